"""Helpers shared by tests: a virtual clock, loopback servers with scripted answers, waiting on conditions,
and running the exporter's CLI as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

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


@contextlib.asynccontextmanager
async def scripted_server(body: str = "") -> object:
    """Run a ``ScriptedServer`` on 127.0.0.1 for the duration of the block."""
    server = ScriptedServer(body=body)
    app = web.Application()
    app.router.add_get("/metrics", server.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
    try:
        yield server
    finally:
        server._release.set()
        await runner.cleanup()


def http_get(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET a URL; return the status and body (errors with a status are returned, not raised)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class ExporterProcess:
    """The exporter CLI running as a real process on a loopback port."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metrics(self) -> str:
        status, body = http_get(f"{self.base}/metrics")
        assert status == 200, status
        return body.decode()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def run_exporter(
    args: list[str], tmp_path: Path, ready: bool = True, timeout: float = 60.0
) -> Iterator[ExporterProcess]:
    """Start ``python -m exporter ARGS --web.listen-address 127.0.0.1:PORT``; stop it by PID afterwards."""
    port = free_port()
    log_path = tmp_path / f"exporter-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*EXPORTER, *args, "--web.listen-address", f"127.0.0.1:{port}", "--log.format", "json"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    exporter = ExporterProcess(process, port, log_path)
    try:
        path = "/-/ready" if ready else "/-/healthy"
        wait_for(
            lambda: process.poll() is None and http_get(exporter.base + path, 2.0)[0] == 200,
            timeout,
            what=f"exporter {path}",
        )
        yield exporter
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    """SIGTERM, then SIGKILL if it does not exit in time; return the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait(timeout)


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
        import threading

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._runners: list[web.AppRunner] = []

    def run(self, coro: object, timeout: float = 30.0) -> object:
        """Run a coroutine on the background loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def serve(self, app: web.Application) -> str:
        """Serve ``app`` on 127.0.0.1 (a free port); return ``http://127.0.0.1:PORT``."""

        async def start() -> str:
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self._runners.append(runner)
            return f"http://127.0.0.1:{runner.addresses[0][1]}"

        return str(self.run(start()))

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
