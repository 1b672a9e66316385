"""Misbehaving upstreams and TLS and credentials helpers, for the fault-injection and security tests.

Each fault is a real server on 127.0.0.1: an aiohttp app run by ``tests.helpers.BackgroundLoop`` or a
raw socket in a thread. The exporter under test is the CLI as a real process (``tests.helpers.run_exporter``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

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


def server_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """A plain TLS server context (for upstreams), verifying client certificates against ``client_ca``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(cafile=str(client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


# -- clients of the exporter: credentials and TLS -------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    """An ``Authorization`` header for basic auth."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def client_context(ca: Path | None = None, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """A client context trusting ``ca`` and presenting ``cert`` (certificate, key) if given."""
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    if cert is not None:
        context.load_cert_chain(*cert)
    return context
