"""Shared test helpers: fixture files, required tools, and the rule that CI never skips."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

FIXTURES = Path(__file__).parent / "fixtures"
REQUIRE_TOOLS = os.environ.get("ITE_REQUIRE_TOOLS") == "1"
"""Set by .ci/run: a test that would skip for a missing tool fails instead."""
TOOLS_DIR = Path(os.environ.get("ITE_TOOLS_DIR") or Path.home() / ".cache" / "inference-throughput-exporter" / "tools")
"""Where ``make k8s-tools`` (scripts/fetch_k8s_tools.py) puts helm and kubectl; searched before ``PATH``."""


def fixture_text(*parts: str) -> str:
    """The text of a file under tests/fixtures."""
    return FIXTURES.joinpath(*parts).read_text(encoding="utf-8")


def require_tool(name: str, hint: str = "") -> str:
    """The path of an executable in ``TOOLS_DIR`` or on ``PATH``; skip the test without it.

    Under ITE_REQUIRE_TOOLS=1 (CI) a missing tool fails the test instead.
    """
    path = shutil.which(name, path=os.pathsep.join([str(TOOLS_DIR), os.environ.get("PATH", os.defpath)]))
    if path is None:
        reason = f"{name} is not installed{': ' + hint if hint else ''}"
        if REQUIRE_TOOLS:
            pytest.fail(f"{reason} (ITE_REQUIRE_TOOLS=1 forbids skipping)")
        pytest.skip(reason)
    return path


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--update-golden`` rewrites golden files instead of comparing against them."""
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden/* from current output")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """Whether this run rewrites golden files."""
    return bool(request.config.getoption("--update-golden"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the llama.cpp tests last: CI builds llama-server in the background while the rest runs."""
    items.sort(key=lambda item: item.get_closest_marker("llamacpp") is not None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under ITE_REQUIRE_TOOLS=1, any skipped test fails the run."""
    if not REQUIRE_TOOLS:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if skipped:
        if reporter is not None:
            reporter.write_line(f"ITE_REQUIRE_TOOLS=1: {skipped} test(s) skipped; CI treats that as a failure")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# The machine running the tests may be a loaded 2-core box: no per-example deadlines, no slowness checks.
settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
