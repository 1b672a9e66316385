"""The Alertmanager routing example of docs/alerting.md: amtool accepts it and routes each severity."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.alerting_stack import check_config
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "alerting.md").read_text(encoding="utf-8")
GROUPS = yaml.safe_load((ROOT / "rules" / "alerts.yml").read_text(encoding="utf-8"))["groups"]
ALERTS = sorted({(r["alert"], r["labels"]["severity"]) for g in GROUPS for r in g["rules"] if "alert" in r})
RECEIVER = {"critical": "pager", "warning": "tickets", "info": "chat"}


@pytest.fixture
def example(tmp_path: Path) -> Path:
    match = re.search(r"```yaml\n(# alertmanager\.yml\n.*?)```", DOC, flags=re.S)
    assert match, "docs/alerting.md has no alertmanager.yml example"
    path = tmp_path / "alertmanager.yml"
    path.write_text(match.group(1), encoding="utf-8")
    return path


def test_amtool_accepts_the_routing_example(example: Path) -> None:
    assert "SUCCESS" in check_config(example)


def _route(example: Path, **labels: str) -> str:
    amtool = require_tool("amtool", "apt-get install prometheus-alertmanager")
    command = [amtool, "config", "routes", "test", f"--config.file={example}", *(f"{k}={v}" for k, v in labels.items())]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.strip()


@pytest.mark.parametrize(("alert", "severity"), ALERTS, ids=[f"{a}-{s}" for a, s in ALERTS])
def test_every_shipped_alert_routes_by_its_severity(example: Path, alert: str, severity: str) -> None:
    assert _route(example, alertname=alert, severity=severity, server="llama-70b") == RECEIVER[severity]


def test_the_example_s_runbook_links_are_the_alerts_own_annotation(example: Path) -> None:
    config = yaml.safe_load(example.read_text(encoding="utf-8"))
    text = yaml.safe_dump(config["receivers"])
    assert text.count("runbook_url") >= 2
