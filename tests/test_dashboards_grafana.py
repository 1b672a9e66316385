"""The committed dashboards against Grafana's own schema and grafana/dashboard-linter's rules.

No Grafana server runs here, but Grafana's schema does: ``grafana-foundation-sdk`` is generated from
it, and every dashboard must load into its ``Dashboard`` type and come back out with every field we
wrote, unchanged (the SDK adds its defaults; it must lose and alter nothing). The linter's rules
are in ``tests/dashboard_lint.py``; each is shown failing on a dashboard broken on purpose, so a
rule that passes is a rule that could fail.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from tests import dashboard_lint
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent
BOARDS = {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(ROOT.glob("dashboards/*.json"))}


def losses(original: Any, loaded: Any, path: str = "") -> list[str]:
    """What of ``original`` is missing or different in ``loaded`` (keys ``loaded`` adds are fine)."""
    if isinstance(original, dict) and isinstance(loaded, dict):
        missing = [f"{path}/{key}: lost" for key in original if key not in loaded]
        kept = [key for key in original if key in loaded]
        return missing + [p for key in kept for p in losses(original[key], loaded[key], f"{path}/{key}")]
    if isinstance(original, list) and isinstance(loaded, list) and len(original) == len(loaded):
        return [p for i, (a, b) in enumerate(zip(original, loaded, strict=True)) for p in losses(a, b, f"{path}[{i}]")]
    return [] if original == loaded else [f"{path}: {original!r} became {loaded!r}"]


def through_the_sdk(board: dict[str, Any]) -> Any:
    register_default_plugins()
    return json.loads(json.dumps(Dashboard.from_json(copy.deepcopy(board)), cls=JSONEncoder))


@pytest.mark.parametrize("name", BOARDS)
def test_every_dashboard_loads_into_grafana_s_dashboard_type_without_loss(name: str) -> None:
    loaded = through_the_sdk(BOARDS[name])
    assert losses(BOARDS[name], loaded) == []
    assert loaded["editable"] is False


def test_the_round_trip_reports_a_field_grafana_s_schema_does_not_know() -> None:
    board = copy.deepcopy(BOARDS["inference-fleet"])
    board["templating"]["list"][1]["definition"] = board["templating"]["list"][1]["query"]
    board["panels"][0]["options"]["colourMode"] = "value"
    assert sorted(losses(board, through_the_sdk(board))) == [
        "/panels[0]/options/colourMode: lost",
        "/templating/list[1]/definition: lost",
    ]


@pytest.mark.parametrize("rule", dashboard_lint.RULES)
@pytest.mark.parametrize("name", BOARDS)
def test_every_dashboard_passes_the_linter_rule(name: str, rule: str) -> None:
    assert dashboard_lint.RULES[rule](BOARDS[name]) == []


def _first(board: dict[str, Any], kind: str = "timeseries") -> dict[str, Any]:
    return next(p for p in dashboard_lint.panels(board) if p["type"] == kind)


def _variable(board: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in board["templating"]["list"] if v["name"] == name)


def _expr(board: dict[str, Any], old: str, new: str) -> None:
    target = next(t for _, t in dashboard_lint.targets(board) if old in t["expr"])
    target["expr"] = target["expr"].replace(old, new, 1)


Mutation = Callable[[dict[str, Any]], None]
BREAKAGES: dict[str, Mutation] = {
    "uneditable-dashboard": lambda b: b.update(editable=True),
    "template-datasource-rule": lambda b: b["templating"]["list"][0].update(name="ds"),
    "template-job-rule": lambda b: _variable(b, "job").update(allValue=".*"),
    "template-instance-rule": lambda b: _variable(b, "instance").update(label="Instance"),
    "template-label-promql-rule": lambda b: _variable(b, "server").update(query="label_values(up{, server)"),
    "template-on-time-change-reload-rule": lambda b: _variable(b, "server").update(refresh=1),
    "template-unused-rule": lambda b: b["templating"]["list"].append({**_variable(b, "server"), "name": "spare"}),
    "panel-datasource-rule": lambda b: _first(b).update(datasource={"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}),
    "panel-title-description-rule": lambda b: _first(b).update(description=""),
    "panel-units-rule": lambda b: _first(b)["fieldConfig"]["defaults"].update(unit="count:tok/s"),
    "panel-no-targets-rule": lambda b: _first(b).update(targets=[]),
    "target-promql-rule": lambda b: _expr(b, "sum by (model) (", "sum by (model) (("),
    "target-rate-interval-rule": lambda b: _expr(b, "[$__rate_interval]", "[5m]"),
    "target-job-rule": lambda b: _expr(b, 'job=~"$job", ', ""),
    "target-instance-rule": lambda b: _expr(b, ', instance=~"$instance"', ""),
    "target-counter-agg-rule": lambda b: _expr(b, "inference_requests_waiting{", "inference_requests_total{"),
    "target-histogram-rule": lambda b: _expr(b, "histogram_quantile(0.5, ", "abs("),
}
"""For each rule, a small change to a committed dashboard that breaks it."""


def test_every_linter_rule_has_a_breakage() -> None:
    assert BREAKAGES.keys() == dashboard_lint.RULES.keys()


@pytest.mark.parametrize("rule", BREAKAGES)
def test_each_linter_rule_reports_a_dashboard_that_breaks_it(rule: str) -> None:
    latency = rule in ("target-histogram-rule", "target-rate-interval-rule")
    board = copy.deepcopy(BOARDS["inference-server" if latency else "inference-fleet"])
    BREAKAGES[rule](board)
    problems = dashboard_lint.RULES[rule](board)
    assert problems, f"{rule} found nothing"
    assert all(problem.startswith(rule.replace("-dashboard", "-dashboard:")) or rule in problem for problem in problems)


@pytest.mark.prometheus
def test_prometheus_s_own_parser_accepts_every_panel_and_variable_query(tmp_path: Path) -> None:
    """promtool parses each query (range variables replaced as the linter does) as a recording rule's expression."""
    promtool = require_tool("promtool", "apt-get install prometheus")
    exprs = [t["expr"] for board in BOARDS.values() for _, t in dashboard_lint.targets(board)]
    exprs += [
        dashboard_lint.LABEL_VALUES.fullmatch(v["query"])["selector"]  # type: ignore[index]
        for board in BOARDS.values()
        for v in dashboard_lint.query_variables(board)
    ]
    for variable, duration in dashboard_lint.RANGE_VARIABLES.items():
        exprs = [expr.replace(variable, duration) for expr in exprs]
    rules = [{"record": f"dashboard:query_{i}:check", "expr": expr} for i, expr in enumerate(exprs)]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}), encoding="utf-8")
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout
