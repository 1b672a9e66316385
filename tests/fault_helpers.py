"""Misbehaving upstreams and an HTTPS-aware exporter runner, for the fault-injection and security tests.

Each fault is a real server on 127.0.0.1: an aiohttp app run by ``tests.helpers.BackgroundLoop`` or a
raw socket in a thread. The exporter under test is the CLI as a real process.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from tests.helpers import EXPORTER, BackgroundLoop, free_port, stop_process, wait_for

VLLM_BODY = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="{model}"}} 3.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{engine="0",model_name="{model}"}} 0.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{{engine="0",model_name="{model}"}} 0.5
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{{engine="0",model_name="{model}"}} {prompt}
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{{engine="0",model_name="{model}"}} {generation}
# TYPE vllm:request_success_total counter
vllm:request_success_total{{engine="0",model_name="{model}",finished_reason="stop"}} {requests}
"""


def vllm_body(generation: float, model: str = "m", prompt: float | None = None, requests: float | None = None) -> str:
    """A small vLLM V1 body with the given counter values (``repr`` keeps NaN/Inf as Prometheus writes them)."""

    def text(value: float) -> str:
        return "NaN" if math.isnan(value) else ("+Inf" if value == math.inf else repr(value))

    return VLLM_BODY.format(
        model=model,
        generation=text(generation),
        prompt=text(2 * generation if prompt is None else prompt),
        requests=text(generation / 100 if requests is None else requests),
    )


# -- misbehaving upstreams ------------------------------------------------------------------------


def app_with(handler: object) -> web.Application:
    """An app serving ``handler`` at ``/metrics``."""
    app = web.Application()
    app.router.add_get("/metrics", handler)  # type: ignore[arg-type]
    return app


def drip_app(interval: float = 1.0) -> web.Application:
    """Answers 200 at once, then one byte of a valid body per ``interval`` seconds."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):  # the exporter gives up at its timeout
            for char in vllm_body(1.0):
                await response.write(char.encode())
                await asyncio.sleep(interval)
        return response

    return app_with(handler)


def huge_app(total: int = 100 * 1024 * 1024, declare: bool = False) -> web.Application:
    """Sends ``total`` bytes of sample lines, chunked, or with a ``Content-Length`` when ``declare``."""
    line = b'vllm:generation_tokens_total{engine="0",model_name="m"} 1.0\n'
    chunk = line * (1024 * 1024 // len(line))

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        if declare:
            response.content_length = total
        await response.prepare(request)
        sent = 0
        with contextlib.suppress(ConnectionError):  # the exporter hangs up at its limit
            while sent < total:
                piece = chunk[: total - sent]
                await response.write(piece)
                sent += len(piece)
        return response

    return app_with(handler)


def body_app(body: bytes, content_type: str = "text/plain") -> web.Application:
    """Always answers ``body``."""

    async def handler(_request: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": content_type})

    return app_with(handler)


@dataclass
class Flapping:
    """Answers a good body and a 500 in turn: down on every other poll."""

    hits: int = 0
    generation: float = 0.0

    async def handle(self, _request: web.Request) -> web.Response:
        self.hits += 1
        self.generation += 1000.0
        if self.hits % 2 == 0:
            return web.Response(status=500, text="engine crashed\n")
        return web.Response(text=vllm_body(self.generation, model="flap"))


@dataclass
class Restartable:
    """Counters that grow at ``rate`` per second and start from zero after ``restart``."""

    rate: float = 1000.0
    started: float = field(default_factory=time.monotonic)

    def restart(self) -> None:
        """Come back from a restart: counters from zero, a new process start time."""
        self.started = time.monotonic()

    async def handle(self, _request: web.Request) -> web.Response:
        generation = self.rate * (time.monotonic() - self.started)
        body = vllm_body(generation, model="restart")
        body += f"# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {self.started + 1e9}\n"
        return web.Response(text=body)


async def listen(app: web.Application, port: int = 0, context: ssl.SSLContext | None = None) -> web.AppRunner:
    """Serve ``app`` on 127.0.0.1:``port`` (0: any); the caller cleans the runner up."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context, reuse_address=True).start()
    return runner


class SilentServer:
    """A TCP server that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self._held:
            conn.close()


def serve_tls(app: web.Application, context: ssl.SSLContext, loop: BackgroundLoop) -> str:
    """Serve ``app`` over TLS on the background ``loop`` until it closes; return ``https://127.0.0.1:PORT``."""
    runner: web.AppRunner = loop.run(listen(app, context=context))  # type: ignore[assignment]
    loop._runners.append(runner)  # closed with the loop
    return f"https://127.0.0.1:{runner.addresses[0][1]}"


def server_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """A plain TLS server context (for upstreams), verifying client certificates against ``client_ca``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(cafile=str(client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


# -- the exporter over HTTP or HTTPS --------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    """An ``Authorization`` header for basic auth."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def client_context(ca: Path | None = None, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """A client context trusting ``ca`` and presenting ``cert`` (certificate, key) if given."""
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


def get(
    url: str, *, headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None, timeout: float = 10.0
) -> tuple[int, bytes, dict[str, str]]:
    """GET; return status, body and headers (HTTP errors are returned, not raised)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


@dataclass
class Exporter:
    """The exporter CLI as a process, reachable at ``base`` (http or https)."""

    process: subprocess.Popen[bytes]
    base: str
    log_path: Path
    headers: dict[str, str] = field(default_factory=dict)
    context: ssl.SSLContext | None = None

    def get(self, path: str, **kwargs: object) -> tuple[int, bytes, dict[str, str]]:
        """GET a path with the exporter's credentials and TLS context unless given others."""
        kwargs.setdefault("headers", self.headers)
        kwargs.setdefault("context", self.context)
        return get(self.base + path, **kwargs)  # type: ignore[arg-type]

    def metrics(self) -> str:
        status, body, _ = self.get("/metrics")
        assert status == 200, (status, body[:200])
        return body.decode()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)


@contextlib.contextmanager
def exporter(
    args: list[str],
    tmp_path: Path,
    *,
    tls: bool = False,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
    ready_path: str = "/-/ready",
    timeout: float = 60.0,
) -> Iterator[Exporter]:
    """Run ``python -m exporter ARGS`` on a free loopback port until the block ends (SIGTERM, by PID)."""
    port = free_port()
    log_path = tmp_path / f"exporter-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*EXPORTER, *args, "--web.listen-address", f"127.0.0.1:{port}", "--log.format", "json"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    running = Exporter(process, f"{'https' if tls else 'http'}://127.0.0.1:{port}", log_path, headers or {}, context)
    try:
        wait_for(
            lambda: process.poll() is None and running.get(ready_path, timeout=5.0)[0] == 200,
            timeout,
            what=f"exporter {ready_path} (log: {log_path})",
        )
        yield running
    finally:
        stop_process(process)
