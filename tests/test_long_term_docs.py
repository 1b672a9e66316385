"""The configuration examples of docs/long-term-storage.md, checked by promtool.

The remote-write and federation blocks also run for real in ``test_victoriametrics_e2e``; here
``promtool check config`` reads the Prometheus files as written, and the scrape part of the
OpenTelemetry Collector's ``prometheus`` receiver (a Prometheus scrape configuration) likewise.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_tool
from tests.test_victoriametrics_e2e import doc_block

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).resolve().parent.parent


def check_config(config: dict[str, object], folder: Path) -> str:
    promtool = require_tool("promtool", "apt-get install prometheus")
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    result = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_the_remote_write_example_is_a_valid_prometheus_config_with_the_shipped_rules(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    output = check_config(doc_block("# prometheus.yml"), tmp_path)
    assert "SUCCESS: 2 rule files found" in output


def test_the_federation_example_is_a_valid_prometheus_config(tmp_path: Path) -> None:
    config = doc_block("# the global Prometheus's prometheus.yml")
    assert "SUCCESS" in check_config(config, tmp_path)
    (job,) = config["scrape_configs"]  # type: ignore[index]
    assert job["honor_labels"] is True and job["metrics_path"] == "/federate"


def test_the_collector_s_prometheus_receiver_holds_a_valid_scrape_config(tmp_path: Path) -> None:
    collector = doc_block("# otelcol.yaml (opentelemetry-collector-contrib)")
    scrape = collector["receivers"]["prometheus"]["config"]  # type: ignore[index]
    assert "SUCCESS" in check_config(scrape, tmp_path)
    assert collector["service"]["pipelines"]["metrics"]["receivers"] == ["prometheus"]  # type: ignore[index]
