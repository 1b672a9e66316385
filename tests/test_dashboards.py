"""The committed Grafana dashboards: generated, current, and built to our conventions.

Whether their queries return data is proven against a real Prometheus in ``test_prometheus_e2e``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dashboards.__main__ import main as dashboards_main
from dashboards.build import documents

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = ROOT / "dashboards"
COMMITTED = {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(DASHBOARD_DIR.glob("*.json"))}
CHAIN = ("job", "instance", "server", "model", "gpu", "deployment")


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in board["panels"] if panel["type"] != "row"]


def test_committed_dashboards_are_what_the_generator_writes() -> None:
    generated = documents()
    assert sorted(generated) == sorted(COMMITTED), "run `make dashboards`"
    for name, text in generated.items():
        assert (DASHBOARD_DIR / name).read_text(encoding="utf-8") == text, f"{name} is stale: run `make dashboards`"
    assert dashboards_main(["--check", "--out", str(DASHBOARD_DIR)]) == 0


def test_the_check_mode_reports_a_stale_dashboard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, text in documents().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    stale = tmp_path / "inference-gpu.json"
    stale.write_text(stale.read_text(encoding="utf-8").replace('"Utilization"', '"Utilisation"'), encoding="utf-8")
    assert dashboards_main(["--check", "--out", str(tmp_path)]) == 1
    assert "inference-gpu.json is stale" in capsys.readouterr().err


def test_the_generator_runs_as_a_module(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dashboards", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(COMMITTED)


def test_there_are_fleet_server_gpu_cost_and_deployment_dashboards_with_fixed_uids_and_tags() -> None:
    uids = {board["uid"] for board in COMMITTED.values()}
    assert uids == {"inference-fleet", "inference-server", "inference-gpu", "inference-cost", "inference-deployment"}
    for name, board in COMMITTED.items():
        assert name == f"{board['uid']}.json"
        assert "inference-throughput-exporter" in board["tags"]
        assert board["title"].startswith("Inference / ")


def _variables(board: dict[str, Any]) -> list[dict[str, Any]]:
    return list(board["templating"]["list"])


def test_every_dashboard_has_a_datasource_variable_and_chained_label_variables() -> None:
    for board in COMMITTED.values():
        variables = _variables(board)
        assert variables[0]["type"] == "datasource"
        assert variables[0]["name"] == "datasource"
        assert variables[0]["query"] == "prometheus"
        names = [v["name"] for v in variables[1:]]
        assert names == [name for name in CHAIN if name in names], f"{board['uid']}: variables out of chain order"
        assert names[:2] == ["job", "instance"]
        for position, variable in enumerate(variables[1:]):
            used = set(re.findall(r"\$(\w+)", variable["query"]))
            assert used <= set(names[:position]), f"{board['uid']}: {variable['name']} uses a later variable"
            assert variable["datasource"]["uid"] == "${datasource}"
            assert variable["includeAll"] and variable["multi"]


def test_the_variables_cover_the_whole_chain_across_the_dashboards() -> None:
    used = {v["name"] for board in COMMITTED.values() for v in _variables(board)[1:]}
    assert used == set(CHAIN)


def test_every_panel_has_a_unit_a_description_and_the_datasource_variable() -> None:
    for board in COMMITTED.values():
        for panel in panels(board):
            where = f"{board['uid']} / {panel['title']}"
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"
            assert panel.get("description"), f"{where}: no description"
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
            assert panel["targets"], f"{where}: no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}", where


def test_every_query_is_filtered_by_the_dashboard_variables() -> None:
    for board in COMMITTED.values():
        names = {v["name"] for v in _variables(board)[1:]}
        for panel in panels(board):
            for target in panel["targets"]:
                expr = target["expr"]
                assert 'job=~"$job"' in expr, f"{board['uid']} / {panel['title']}: {expr}"
                assert 'instance=~"$instance"' in expr, f"{board['uid']} / {panel['title']}: {expr}"
                assert set(re.findall(r"\$(\w+)", expr)) <= names | {"__rate_interval", "__range"}, expr


def test_panels_have_unique_ids_and_do_not_overlap_on_the_grid() -> None:
    for board in COMMITTED.values():
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), board["uid"]
        cells: dict[tuple[int, int], str] = {}
        for panel in board["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, f"{board['uid']} / {panel['title']}"
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                    cells[(x, y)] = panel["title"]


def test_the_server_dashboard_shows_latency_percentiles_from_the_normalized_histograms() -> None:
    board = COMMITTED["inference-server.json"]
    exprs = [t["expr"] for p in panels(board) for t in p["targets"]]
    for histogram in ("time_to_first_token", "inter_token_latency", "e2e_request_latency", "request_queue_time"):
        quantiles = [e for e in exprs if f"inference_{histogram}_seconds_bucket" in e]
        assert [re.match(r"histogram_quantile\(([\d.]+),", e).group(1) for e in quantiles] == ["0.5", "0.9", "0.99"]  # type: ignore[union-attr]
        assert all("le)" in e and "$__rate_interval" in e for e in quantiles)
