"""A real VictoriaMetrics on loopback (Debian ``victoria-metrics``), queried over its Prometheus API.

Single-node VictoriaMetrics takes Prometheus remote write at ``/api/v1/write`` and answers
``/api/v1/query`` and ``/api/v1/label/.../values`` as Prometheus does, so ``PrometheusProcess``
is its client too. ``-search.latencyOffset`` is cut from 30 s to 1 s so fresh samples are
queryable at once, and the response cache is off, as for backfilling: a test reads while data
arrives.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import require_tool
from tests.helpers import free_port, run_until_ready
from tests.prometheus_stack import PrometheusProcess


@contextlib.contextmanager
def run_victoria_metrics(tmp_path: Path, timeout: float = 60.0) -> Iterator[PrometheusProcess]:
    """Start VictoriaMetrics on 127.0.0.1 and a free port; stop it by PID afterwards."""
    binary = require_tool("victoria-metrics", "apt-get install victoria-metrics")
    port = free_port()
    argv = [
        binary,
        f"-storageDataPath={tmp_path / 'vm-data'}",
        f"-httpListenAddr=127.0.0.1:{port}",
        "-retentionPeriod=1d",
        "-search.latencyOffset=1s",
        "-search.disableCache",
        "-loggerLevel=WARN",
    ]
    log_path = tmp_path / "victoria-metrics.log"
    with run_until_ready(argv, log_path, lambda p: PrometheusProcess(p, port, log_path), "/health", timeout) as store:
        yield store
