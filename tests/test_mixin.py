"""The monitoring mixin (``mixin/``): rendered with jsonnet, it is the committed dashboards and rules.

``mixin/generated/`` and the Helm chart's ``files/`` are copies written by ``python -m rules.bundles``
from the same generators; the mixin's jsonnet writes JSON and YAML in the generators' own style
(``mixin/lib/manifest.libsonnet``), so its output must equal ``dashboards/*.json`` and
``rules/*.yml`` byte for byte.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from rules import bundles
from rules.settings import load
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent
MIXIN = ROOT / "mixin"
COMMITTED = {
    **{path.name: path for path in sorted((ROOT / "dashboards").glob("*.json"))},
    "alerts.yml": ROOT / "rules" / "alerts.yml",
    "recording.yml": ROOT / "rules" / "recording.yml",
}


def jsonnet(*args: str) -> str:
    binary = require_tool("jsonnet", "apt-get install jsonnet")
    result = subprocess.run([binary, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mixin")
    jsonnet("-S", "-m", str(out), "mixin/render.jsonnet")
    return out


def test_the_copies_in_the_mixin_and_the_chart_are_current() -> None:
    assert bundles.main(["--check"]) == 0, "run `make dashboards`"


def test_the_check_reports_a_stale_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dashboards.generated import write_or_check

    files = bundles.mixin_files(load())
    write_or_check(files, tmp_path, check=False)
    (tmp_path / "alerts.json").write_text("{}\n", encoding="utf-8")
    assert write_or_check(files, tmp_path, check=True) == 1
    assert "alerts.json is stale" in capsys.readouterr().err


def test_the_mixin_renders_the_committed_dashboards_and_rules_byte_for_byte(rendered: Path) -> None:
    assert sorted(p.name for p in rendered.iterdir()) == sorted(COMMITTED)
    for name, path in COMMITTED.items():
        assert (rendered / name).read_bytes() == path.read_bytes(), f"{name} differs from {path.relative_to(ROOT)}"


def test_the_mixin_has_the_monitoring_mixin_fields() -> None:
    fields = json.loads(jsonnet("-e", "std.objectFieldsAll(import 'mixin/mixin.libsonnet')"))
    assert {"_config", "grafanaDashboards", "prometheusAlerts", "prometheusRules"} <= set(fields)


def test_runbook_url_pattern_in_the_config_points_every_alert_at_your_runbooks() -> None:
    code = (
        "local m = (import 'mixin/mixin.libsonnet') + {_config+:: {runbookURLPattern: 'https://wiki.example/run/%s'}};"
        "local manifest = import 'mixin/lib/manifest.libsonnet'; manifest.yaml(m.prometheusAlerts)"
    )
    ours = yaml.safe_load(jsonnet("-S", "-e", code))
    committed = yaml.safe_load(COMMITTED["alerts.yml"].read_text(encoding="utf-8"))
    alerts = [(r, c) for g, h in zip(ours["groups"], committed["groups"], strict=True)
              for r, c in zip(g["rules"], h["rules"], strict=True) if "alert" in r]
    assert len(alerts) >= 13
    for rule, original in alerts:
        assert rule["annotations"].pop("runbook_url") == f"https://wiki.example/run/{rule['alert'].lower()}"
        original["annotations"].pop("runbook_url")
        assert rule == original


def test_the_jsonnet_writers_match_the_python_ones_on_awkward_values() -> None:
    from dashboards.build import render
    from rules import emit

    value = {"b": [1, 0.9, 0.05, -2.5, 2.0, True, None, {}, []], "a": 'é"\\x\ty', "on": "on", "d": "1h30m",
             "r": ":a:b", "m": "two\nlines", "e": "ends\n", "n": "10", "k": {"z": "{{ $value }}", "name": "x"}}
    text = json.dumps(value)
    code = f"local m = import 'mixin/lib/manifest.libsonnet'; local v = {text}; m.json(v) + '---\\n' + m.yaml(v)"
    json_text, yaml_text = jsonnet("-S", "-e", code).removesuffix("\n").split("---\n")
    assert json_text == render(value)
    assert yaml_text == emit.dump(value)
