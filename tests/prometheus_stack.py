"""A real Prometheus on loopback for tests: start it on a scrape config, query it over its HTTP API.

It runs the Debian ``prometheus`` binary with a temporary data directory, on 127.0.0.1 and a free
port, and is stopped by PID afterwards. Waiting is on conditions with deadlines, never on sleeps.
"""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rules.build import documents
from rules.settings import Settings
from tests.helpers import LoopbackProcess, free_port, http_get, run_until_ready

Series = dict[str, Any]
"""One element of an instant-vector result: ``{"metric": {labels}, "value": [time, "text"]}``."""


class QueryError(Exception):
    """Prometheus rejected a query (bad syntax, a many-to-many match, ...)."""


@dataclass
class PrometheusProcess(LoopbackProcess):
    """A running Prometheus and a small client for its HTTP API."""

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>``; return its ``data``, or raise ``QueryError`` with Prometheus's error."""
        status, body = http_get(f"{self.base}/api/v1/{path}?{urllib.parse.urlencode(params)}", timeout=30.0)
        answer = json.loads(body)
        if status != 200 or answer.get("status") != "success":
            raise QueryError(f"{path} {params}: {answer.get('error', status)}")
        return answer["data"]

    def query(self, expr: str, at: float | None = None) -> list[Series]:
        """An instant query (at ``at`` unix seconds, or now)."""
        params = {"query": expr} if at is None else {"query": expr, "time": repr(at)}
        data = self.api("query", **params)
        if data["resultType"] != "vector":
            raise QueryError(f"{expr}: a {data['resultType']}, not a vector")
        return list(data["result"])

    def label_values(self, label: str, selector: str) -> list[str]:
        """The values of ``label`` on the series that ``selector`` selects (Grafana's ``label_values``)."""
        return list(self.api(f"label/{label}/values", **{"match[]": selector}))

    def rule_groups(self) -> list[dict[str, Any]]:
        return list(self.api("rules")["groups"])

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.api("alerts")["alerts"])


def scrape_config(job: str, targets: list[str], rule_files: list[Path], interval: str = "1s") -> dict[str, Any]:
    """A Prometheus configuration that scrapes ``targets`` as ``job`` and loads ``rule_files``."""
    return {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}],
    }


@contextlib.contextmanager
def run_prometheus(
    binary: str, config: dict[str, Any], tmp_path: Path, timeout: float = 60.0
) -> Iterator[PrometheusProcess]:
    """Start Prometheus on ``config`` and wait until it is ready; stop it by PID afterwards."""
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    argv = [
        binary,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    log_path = tmp_path / "prometheus.log"
    make = lambda process: PrometheusProcess(process, port, log_path)  # noqa: E731
    with run_until_ready(argv, log_path, make, "/-/ready", timeout) as running:
        yield running


def write_rule_files(tmp_path: Path, settings: Settings) -> list[Path]:
    """The rule files the generator writes from ``settings`` (``rules.build``), in ``tmp_path``."""
    paths = []
    for name, text in documents(settings).items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        paths.append(tmp_path / name)
    return paths
