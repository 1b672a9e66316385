"""Helpers shared by tests and benchmarks: a virtual clock, loopback servers with scripted answers, waiting
on conditions, running the exporter's CLI as a real process (over http or https), and a systemd notify socket."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from aiohttp import web

from exporter.config import Config, config_from_data, config_from_text, load_config
from exporter.poll.poller import Poller
from exporter.sources.servers import adapter_kinds

EXPORTER = [sys.executable, "-m", "exporter"]


class Clock:
    """A virtual monotonic clock that tests advance by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], object], timeout: float = 30.0, interval: float = 0.05, what: str = "") -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as exc:  # the condition may fail until the system is up
            last_error = exc
        else:
            if value:
                return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}: {last_error!r}")


async def async_wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "") -> object:
    """``wait_for`` for coroutines: yields to the event loop between checks."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")


@dataclass
class ScriptedServer:
    """A loopback HTTP server whose ``/metrics`` answer a test sets: a body, a status, or a hang."""

    body: str = ""
    status: int = 200
    hang: bool = False
    hits: int = 0
    url: str = ""
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, _request: web.Request) -> web.StreamResponse:
        self.hits += 1
        if self.hang:
            await self._release.wait()
        return web.Response(status=self.status, text=self.body, content_type="text/plain")


async def listen(app: web.Application, port: int = 0, context: ssl.SSLContext | None = None) -> web.AppRunner:
    """Serve ``app`` on 127.0.0.1:``port`` (0: any), over TLS with ``context``; the caller cleans the runner up."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context, reuse_address=True).start()
    return runner


@contextlib.asynccontextmanager
async def scripted_server(body: str = "") -> AsyncIterator[ScriptedServer]:
    """Run a ``ScriptedServer`` on 127.0.0.1 for the duration of the block."""
    server = ScriptedServer(body=body)
    app = web.Application()
    app.router.add_get("/metrics", server.handle)
    runner = await listen(app)
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
    try:
        yield server
    finally:
        server._release.set()
        await runner.cleanup()


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


def http_get(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """``get`` without the response headers."""
    status, body, _ = get(url, headers=headers, timeout=timeout)
    return status, body


@dataclass
class LoopbackProcess:
    """A server running as a real process on a loopback port, its output in ``log_path``."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    scheme: str = "http"

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


P = TypeVar("P", bound=LoopbackProcess)


@contextlib.contextmanager
def run_until_ready(
    argv: list[str],
    log_path: Path,
    make: Callable[[subprocess.Popen[bytes]], P],
    ready_path: str,
    timeout: float = 60.0,
) -> Iterator[P]:
    """Start ``argv`` with its output in ``log_path``, wait until ``GET ready_path`` answers 200; stop it after.

    ``make`` wraps the started process (with its port) in the ``LoopbackProcess`` the caller uses. A
    process that never gets ready fails the test with the tail of its log.
    """
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    running = make(process)
    try:
        try:
            wait_for(
                lambda: process.poll() is None and http_get(f"{running.base}{ready_path}", 2.0)[0] == 200,
                timeout,
                what=f"{Path(argv[0]).name} {ready_path}",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- log ---\n{running.log()[-4000:]}") from exc
        yield running
    finally:
        stop_process(process)


@dataclass
class ExporterProcess(LoopbackProcess):
    """The exporter CLI as a process, reached over http or https with ``headers`` and ``context`` by default."""

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

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)


@contextlib.contextmanager
def run_exporter(
    args: list[str],
    tmp_path: Path,
    *,
    tls: bool = False,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
    ready_path: str = "/-/ready",
    timeout: float = 60.0,
) -> Iterator[ExporterProcess]:
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
    running = ExporterProcess(process, port, log_path, "https" if tls else "http", headers or {}, context)
    try:
        wait_for(
            lambda: process.poll() is None and running.get(ready_path, timeout=5.0)[0] == 200,
            timeout,
            what=f"exporter {ready_path} (log: {log_path})",
        )
        yield running
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    """SIGTERM, then SIGKILL if it does not exit in time; close its stdout pipe if any; return the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    code = process.wait(timeout)
    if process.stdout is not None:
        process.stdout.close()
    return code


@contextlib.contextmanager
def notify_listener(timeout: float) -> Iterator[tuple[socket.socket, str]]:
    """A Unix datagram socket bound where systemd would put its notify socket (a short path); yields it and the path."""
    folder = tempfile.mkdtemp(prefix="ite-", dir="/tmp")
    path = os.path.join(folder, "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(timeout)
        try:
            yield sock, path
        finally:
            os.unlink(path)
            os.rmdir(folder)


def sample_value(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in an exposition, or ``None``: the series must match every given label."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


class BackgroundLoop:
    """An event loop in a daemon thread, for loopback servers that a subprocess under test talks to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._runners: list[web.AppRunner] = []

    def run(self, coro: object, timeout: float = 30.0) -> object:
        """Run a coroutine on the background loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def serve(self, app: web.Application, context: ssl.SSLContext | None = None) -> str:
        """Serve ``app`` on 127.0.0.1 (a free port), over TLS with ``context``, until the loop closes.

        Return ``http://127.0.0.1:PORT`` (``https://`` with ``context``).
        """
        runner: web.AppRunner = self.run(listen(app, context=context))  # type: ignore[assignment]
        self._runners.append(runner)
        return f"{'https' if context else 'http'}://127.0.0.1:{runner.addresses[0][1]}"

    def close(self) -> None:
        async def stop() -> None:
            for runner in self._runners:
                await runner.cleanup()

        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@contextlib.contextmanager
def background_loop() -> Iterator[BackgroundLoop]:
    """A ``BackgroundLoop`` that is closed afterwards."""
    loop = BackgroundLoop()
    try:
        yield loop
    finally:
        loop.close()


KINDS = adapter_kinds()
"""The server kinds the command line hands the configuration (every registered adapter)."""


def parse_config(text: str, source: str = "config") -> Config:
    """Parse and validate YAML text as the exporter does, with every adapter's kind valid."""
    return config_from_text(text, source, kinds=KINDS)


def read_config(path: str | Path) -> Config:
    """Read and validate a config file as the exporter does."""
    return load_config(path, kinds=KINDS)


def config_of(data: object, source: str = "config") -> Config:
    """Validate parsed YAML data as the exporter does."""
    return config_from_data(data, source, kinds=KINDS)


async def gpu_loops_once(poller: Poller) -> None:
    """One iteration of the slow GPU loop, then one of the fast one: what production runs at start."""
    await poller.poll_gpus_slow()
    await poller.poll_gpus_fast()
