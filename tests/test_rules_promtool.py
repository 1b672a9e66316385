"""promtool on the generated rules: ``check rules`` on every file, and the unit tests in tests/rules/.

The throughput-drop alert's guards are each removed in turn to show that some unit test fails
without it: every guard is needed, and the quiet cases could fail.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from rules.build import documents, render
from rules.settings import load
from tests.conftest import require_tool

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).resolve().parent.parent
RULE_FILES = [ROOT / "rules" / "recording.yml", ROOT / "rules" / "alerts.yml"]
TESTS_DIR = ROOT / "tests" / "rules"
UNIT_TESTS = sorted(TESTS_DIR.glob("*.test.yml"))
THROUGHPUT_TESTS = TESTS_DIR / "throughput_drop.test.yml"


@pytest.fixture
def promtool() -> str:
    return require_tool("promtool", "apt-get install prometheus")


def run(promtool: str, *args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_accepts_every_generated_rule_file(promtool: str) -> None:
    result = run(promtool, "check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_FILES)


@pytest.mark.parametrize("unit_test", UNIT_TESTS, ids=[p.name for p in UNIT_TESTS])
def test_promtool_unit_tests_pass(promtool: str, unit_test: Path) -> None:
    result = run(promtool, "test", "rules", unit_test.name, cwd=TESTS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def _sandbox(tmp_path: Path, alerts: str, recording: str) -> Path:
    """A copy of the layout the unit tests expect (rules/ two levels above tests/rules/)."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "alerts.yml").write_text(alerts, encoding="utf-8")
    (tmp_path / "rules" / "recording.yml").write_text(recording, encoding="utf-8")
    tests = tmp_path / "tests" / "rules"
    tests.mkdir(parents=True)
    shutil.copy(THROUGHPUT_TESTS, tests)
    return tests


def _without_clause(alerts_text: str, clause: str) -> str:
    groups = yaml.safe_load(alerts_text)["groups"]
    for group in groups:
        for rule in group["rules"]:
            if rule.get("alert") == "InferenceThroughputDrop":
                assert clause in rule["expr"]
                rule["expr"] = rule["expr"].replace(clause, "")
    return render(groups)


def _guard_clauses() -> list[str]:
    """The top-level ``and``/``unless`` clauses of the throughput-drop expression, comments included."""
    alerts = yaml.safe_load(documents(load())["alerts.yml"])
    expr = next(r["expr"] for g in alerts["groups"] for r in g["rules"] if r.get("alert") == "InferenceThroughputDrop")
    starts = [m.start() for m in re.finditer(r"^(?:# .*\n)?(?:and|unless) ", expr, flags=re.M)]
    return [expr[start:end] for start, end in zip(starts, [*starts[1:], len(expr)], strict=True)]


def test_the_throughput_drop_expression_has_four_guards() -> None:
    clauses = _guard_clauses()
    assert len(clauses) == 4
    assert ["waiting" in clauses[0], "offset" in clauses[1], "inference_server_up" in clauses[2]] == [True] * 3
    assert "resets(" in clauses[3]


@pytest.mark.parametrize("index", range(4), ids=["demand", "min-history", "was-down", "counter-reset"])
def test_each_throughput_drop_guard_is_needed_by_a_unit_test(promtool: str, tmp_path: Path, index: int) -> None:
    files = documents(load())
    clause = _guard_clauses()[index]
    tests = _sandbox(tmp_path, _without_clause(files["alerts.yml"], clause), files["recording.yml"])
    result = run(promtool, "test", "rules", THROUGHPUT_TESTS.name, cwd=tests)
    assert result.returncode != 0, f"no unit test fails without:\n{clause}"
    assert "(quiet)" in result.stdout + result.stderr


def test_the_drop_ratio_in_the_settings_decides_when_the_alert_fires(promtool: str, tmp_path: Path) -> None:
    settings = load()
    stricter = dataclasses.replace(settings.throughput_drop, ratio=0.3)
    files = documents(dataclasses.replace(settings, throughput_drop=stricter))
    tests = _sandbox(tmp_path, files["alerts.yml"], files["recording.yml"])
    result = run(promtool, "test", "rules", THROUGHPUT_TESTS.name, cwd=tests)
    # the capacity drop leaves 38 % of the baseline: above a 30 % limit it no longer fires
    assert result.returncode != 0
    assert "capacity drop" in result.stdout + result.stderr
    assert "(quiet)" not in result.stdout + result.stderr
