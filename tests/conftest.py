"""Shared test helpers: fixture files, required tools, and the rule that CI never skips."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REQUIRE_TOOLS = os.environ.get("ITE_REQUIRE_TOOLS") == "1"
"""Set by .ci/run: a test that would skip for a missing tool fails instead."""


def fixture_text(*parts: str) -> str:
    """The text of a file under tests/fixtures."""
    return FIXTURES.joinpath(*parts).read_text(encoding="utf-8")


def require_tool(name: str, hint: str = "") -> str:
    """The path of an executable; skip the test without it (fail under ITE_REQUIRE_TOOLS=1)."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed{': ' + hint if hint else ''}"
        if REQUIRE_TOOLS:
            pytest.fail(f"{reason} (ITE_REQUIRE_TOOLS=1 forbids skipping)")
        pytest.skip(reason)
    return path


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
