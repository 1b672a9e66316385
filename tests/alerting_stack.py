"""A real Alertmanager on loopback and a webhook receiver that records what reaches it.

Alertmanager is the Debian ``prometheus-alertmanager`` binary (upstream's ``alertmanager`` where
that is installed), on 127.0.0.1 with clustering off, its configuration checked by
``amtool check-config`` first. The receiver is an aiohttp app on a ``BackgroundLoop``: every POST
is kept with its path and the wall time it arrived.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from tests.conftest import require_tool
from tests.helpers import BackgroundLoop, LoopbackProcess, free_port, http_get, run_until_ready


def alertmanager_binary() -> str:
    """The Alertmanager binary: Debian names it ``prometheus-alertmanager``."""
    found = shutil.which("alertmanager")
    return found or require_tool("prometheus-alertmanager", "apt-get install prometheus-alertmanager")


def check_config(path: Path) -> str:
    """Run ``amtool check-config``; fail with its output unless it succeeds; return the output."""
    amtool = require_tool("amtool", "apt-get install prometheus-alertmanager")
    result = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@dataclass
class Notification:
    """One webhook call: its path, when it arrived (``time.time()``) and its payload."""

    path: str
    received: float
    payload: dict[str, Any]

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.payload["alerts"])


@dataclass
class Receiver:
    """The notifications that reached the webhook, in order."""

    url: str = ""
    notifications: list[Notification] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle(self, request: web.Request) -> web.Response:
        payload = await request.json()
        with self._lock:
            self.notifications.append(Notification(request.path, time.time(), payload))
        return web.Response(text="ok\n")

    def received(self) -> list[Notification]:
        with self._lock:
            return list(self.notifications)

    def first(self, **labels: str) -> tuple[Notification, dict[str, Any]] | None:
        """The first notification holding an alert with these labels, and that alert."""
        for note in self.received():
            for alert in note.alerts():
                if all(alert["labels"].get(k) == v for k, v in labels.items()):
                    return note, alert
        return None


def serve_receiver(loop: BackgroundLoop) -> Receiver:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/{route}", receiver.handle)
    receiver.url = loop.serve(app)
    return receiver


@contextlib.contextmanager
def run_alertmanager(config: dict[str, Any], tmp_path: Path, timeout: float = 60.0) -> Iterator[LoopbackProcess]:
    """Check ``config`` with amtool, start Alertmanager on it, wait until ready; stop it by PID afterwards."""
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    check_config(path)
    port = free_port()
    argv = [
        alertmanager_binary(),
        f"--config.file={path}",
        f"--storage.path={tmp_path / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    log_path = tmp_path / "alertmanager.log"
    with run_until_ready(argv, log_path, lambda p: LoopbackProcess(p, port, log_path), "/-/ready", timeout) as manager:
        yield manager


def alerts_in(manager: LoopbackProcess) -> list[dict[str, Any]]:
    """What Alertmanager holds now (``/api/v2/alerts``)."""
    status, body = http_get(f"{manager.base}/api/v2/alerts", 5.0)
    assert status == 200, body
    return list(json.loads(body))
