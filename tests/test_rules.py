"""The generated rule files: current, following the mixin conventions, configurable in one place.

promtool checks and unit-tests them in ``test_rules_promtool``; a real Prometheus evaluates them
against the real exporter in ``test_prometheus_e2e``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import tomllib
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.exposition.metrics import ALL
from rules.__main__ import main as rules_main
from rules.build import documents
from rules.settings import SettingsError, load, parse

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "rules"
SETTINGS_TEXT = (RULES_DIR / "settings.yml").read_text(encoding="utf-8")
RUNBOOKS = (ROOT / "docs" / "runbooks.md").read_text(encoding="utf-8")
PROMTOOL_TESTS = sorted((ROOT / "tests" / "rules").glob("*.test.yml"))


def rules(kind: str) -> list[dict[str, Any]]:
    """Every ``record`` or every ``alert`` rule of both rule files."""
    groups = [
        group
        for name in ("recording.yml", "alerts.yml")
        for group in yaml.safe_load((RULES_DIR / name).read_text(encoding="utf-8"))["groups"]
    ]
    return [rule for group in groups for rule in group["rules"] if kind in rule]


def test_committed_rule_files_are_what_the_generator_writes() -> None:
    for name, text in documents(load()).items():
        assert (RULES_DIR / name).read_text(encoding="utf-8") == text, f"rules/{name} is stale: run `make dashboards`"
    assert rules_main(["--check"]) == 0


def test_the_check_mode_reports_a_stale_rule_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, text in documents(load()).items():
        (tmp_path / name).write_text(text.replace("for: 10m", "for: 20m"), encoding="utf-8")
    assert rules_main(["--check", "--out", str(tmp_path)]) == 1
    assert "alerts.yml is stale" in capsys.readouterr().err


def test_the_generator_runs_as_a_module_from_a_settings_file(tmp_path: Path) -> None:
    settings = tmp_path / "settings.yml"
    settings.write_text(SETTINGS_TEXT.replace("  threshold: 0.01\n", "  threshold: 0.25\n"), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "rules", "--settings", str(settings), "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "inference_cost_per_request > 0.25" in (tmp_path / "alerts.yml").read_text(encoding="utf-8")


def test_every_threshold_and_window_comes_from_the_settings_file() -> None:
    settings = load()
    drop = dataclasses.replace(
        settings.throughput_drop, ratio=0.3, baseline_window="3h", min_history="45m", restart_grace="20m", for_="7m"
    )
    alerts = documents(dataclasses.replace(settings, throughput_drop=drop))["alerts.yml"]
    assert "baseline_ratio < 0.3\n" in alerts
    assert "offset 45m" in alerts
    assert "inference_server_up[20m]" in alerts
    assert "for: 7m" in alerts
    assert "inference_generation_tokens_per_second_per_gpu[3h]" in alerts


def test_settings_report_every_problem_with_its_path() -> None:
    text = (
        SETTINGS_TEXT.replace("  ratio: 0.5\n", "  ratio: 1.5\n")
        .replace("  baseline_window: 1h\n", "  baseline_window: an hour\n")
        .replace("kv_cache_near_full:\n", "kv_cache_near_full:\n  colour: red\n")
        .replace("  critical_xids: [48, 64, 74, 79, 95, 119, 120]\n", "")
        .replace("[hw_slowdown,", "[too_hot,")
    )
    with pytest.raises(SettingsError) as caught:
        parse(text, "settings.yml")
    assert caught.value.problems == [
        "throughput_drop.ratio: must be a number between 0 and 1 (exclusive)",
        "throughput_drop.baseline_window: must be a Prometheus duration such as 30s, 10m or 1h",
        "gpu_xid_errors.critical_xids: missing",
        "gpu_throttled.reasons: must be a non-empty list of clock-event reasons (gpu_idle, applications_clocks_setting,"
        " sw_power_cap, hw_slowdown, sync_boost, sw_thermal_slowdown, hw_thermal_slowdown, hw_power_brake_slowdown,"
        " display_clock_setting)",
        "kv_cache_near_full.colour: unknown key",
    ]
    assert str(caught.value).startswith("settings.yml: 5 problem(s)\n  throughput_drop.ratio:")


def test_settings_that_are_not_a_mapping_are_rejected() -> None:
    with pytest.raises(SettingsError, match="settings: must be a mapping"):
        parse("- just\n- a list\n")
    with pytest.raises(SettingsError, match="invalid YAML: line"):
        parse("a: [unclosed\n")


def test_the_generator_exits_2_listing_the_problems_of_bad_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "settings.yml"
    bad.write_text(SETTINGS_TEXT.replace("exporter_job: inference-throughput-exporter", "exporter_job: ''"), "utf-8")
    assert rules_main(["--settings", str(bad), "--out", str(tmp_path)]) == 2
    assert "exporter_job: must be a non-empty string" in capsys.readouterr().err
    assert not (tmp_path / "alerts.yml").exists()


def test_recording_rules_are_named_level_metric_operations() -> None:
    for rule in rules("record"):
        level, metric, operations = rule["record"].split(":")
        assert re.fullmatch(r"[a-z_]*", level) and re.fullmatch(r"inference_[a-z_]+", metric), rule["record"]
        assert re.fullmatch(r"[a-z_]+", operations), rule["record"]


def test_every_alert_follows_the_mixin_conventions() -> None:
    for rule in rules("alert"):
        name = rule["alert"]
        assert re.fullmatch(r"Inference[A-Z][A-Za-z]+", name)
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}, name


def _homepage() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"]["Homepage"])


def test_every_runbook_url_is_absolute_and_points_at_its_section_on_the_project_home_page() -> None:
    sections = {name.lower() for name in _runbook_sections()}
    for rule in rules("alert"):
        url = urllib.parse.urlsplit(rule["annotations"]["runbook_url"])
        assert url.scheme in ("http", "https") and url.netloc, rule["annotations"]["runbook_url"]
        page = urllib.parse.urlunsplit(url._replace(fragment=""))
        assert page == f"{_homepage()}/blob/main/docs/runbooks.md", page
        assert url.fragment == rule["alert"].lower() and url.fragment in sections


def test_the_home_page_is_named_only_in_pyproject_among_the_sources() -> None:
    homepage = _homepage()
    sources = [*RULES_DIR.glob("*.py"), RULES_DIR / "settings.yml", *(ROOT / "dashboards").glob("*.py")]
    assert [path.name for path in sources if homepage in path.read_text(encoding="utf-8")] == []


def test_a_runbook_url_in_the_settings_replaces_the_project_s_page() -> None:
    own = "https://git.example.com/sre/runbooks/inference.md"
    alerts = documents(dataclasses.replace(load(), runbook_url=own))["alerts.yml"]
    groups = yaml.safe_load(alerts)["groups"]
    urls = [r["annotations"]["runbook_url"] for g in groups for r in g["rules"] if "alert" in r]
    assert urls and all(url.startswith(own + "#inference") for url in urls)
    assert f"{own}#inferencethroughputdrop" in urls


@pytest.mark.parametrize("value", ["docs/runbooks.md", "ftp://example.com/runbooks", "https://x.example/r.md#top", 3])
def test_a_runbook_url_that_is_not_an_absolute_http_url_is_rejected(value: object) -> None:
    text = SETTINGS_TEXT.replace('runbook_url: ""', f"runbook_url: {json.dumps(value)}")
    assert text != SETTINGS_TEXT
    with pytest.raises(SettingsError, match=r"runbook_url: must be \"\" .* or an absolute http\(s\) URL"):
        parse(text)


def test_the_issue_s_alerts_all_exist() -> None:
    names = {rule["alert"] for rule in rules("alert")}
    assert names >= {
        "InferenceThroughputDrop",
        "InferenceServerDown",
        "InferenceExporterNvmlDown",
        "InferenceGpuIdleWhileQueued",
        "InferenceCostPerRequestHigh",
        "InferenceGpuXidErrors",
        "InferenceGpuThrottled",
        "InferenceKvCacheNearFull",
    }


def _runbook_sections() -> dict[str, str]:
    parts = re.split(r"^## (\w+)\n", RUNBOOKS, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_alert_has_a_runbook_section_with_meaning_impact_diagnosis_and_mitigation() -> None:
    sections = _runbook_sections()
    alerts = {rule["alert"] for rule in rules("alert")}
    assert set(sections) == alerts
    for name, body in sections.items():
        for part in ("**Meaning.**", "**Impact.**", "**Diagnosis.**", "**Mitigation.**"):
            assert part in body, f"runbook {name}: no {part}"


def _expressions() -> list[str]:
    exprs = [rule["expr"] for kind in ("record", "alert") for rule in rules(kind)]
    for path in sorted((ROOT / "dashboards").glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        exprs += [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
        exprs += [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    return exprs


def test_every_exporter_metric_that_rules_and_dashboards_use_is_defined() -> None:
    defined = {metric.name for metric in ALL}
    histograms = {metric.name for metric in ALL if metric.type == "histogram"}
    used = set()
    for expr in _expressions():
        for name in re.findall(r"(?<![:\w])inference_\w+", expr):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            used.add(base if base in histograms else name)
    assert used - defined == set(), "metrics used by rules or dashboards but not served"


def _promtool_cases() -> list[dict[str, Any]]:
    return [case for path in PROMTOOL_TESTS for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]]


def test_every_alert_has_a_promtool_case_where_it_fires_and_one_where_it_stays_quiet() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in _promtool_cases():
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in rules("alert")}
    assert alerts - fired == set(), "alerts never shown firing"
    assert alerts - quiet == set(), "alerts never shown quiet"


def test_the_throughput_drop_tests_cover_capacity_demand_restart_and_new_server() -> None:
    cases = {case["name"]: case for case in _promtool_cases() if "InferenceThroughputDrop" in json.dumps(case)}
    expectations = {"capacity drop": True, "demand drop": False, "restart": False, "new server": False}
    for words, fires in expectations.items():
        named = [case for name, case in cases.items() if words in name]
        assert named, f"no throughput-drop case about {words}"
        for case in named:
            checks = [c for c in case["alert_rule_test"] if c["alertname"] == "InferenceThroughputDrop"]
            assert any(bool(c["exp_alerts"]) for c in checks) is fires, case["name"]
