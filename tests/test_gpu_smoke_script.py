"""The hardware check script (``scripts/gpu-smoke.sh``) in its dry run: the fake NVML and a fake nvidia-smi.

The script runs as on a GPU machine: through its shell wrapper, from this checkout, with
``structlog`` made unimportable (a GPU machine lacks it, and the GPU module must not need it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent.parent / "scripts" / "gpu-smoke.sh"
CHECKS = ("utilization", "memory used", "memory total", "power", "power limit", "temperature", "sm clock")


def smoke(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    blocker = tmp_path / "blocked"
    blocker.mkdir(exist_ok=True)
    (blocker / "structlog.py").write_text('raise ImportError("structlog is not installed here")\n', encoding="utf-8")
    environment = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(blocker), **env}
    return subprocess.run(
        [str(shutil.which("bash")), str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )


@pytest.mark.e2e
def test_the_dry_run_compares_every_reading_and_passes(tmp_path: Path) -> None:
    result = smoke(tmp_path, "--dry-run", "--duration", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert sum(1 for line in lines if line.strip().startswith(("0s", "1s", "2s", "3s"))) >= 3
    for check in CHECKS:
        assert any(line.startswith(check) and line.endswith("PASS") for line in lines), check
    assert any(line.startswith("energy gpu 0") and line.endswith("PASS") for line in lines)
    assert lines[-1] == "all checks passed"


@pytest.mark.e2e
def test_a_reading_beyond_its_tolerance_fails_the_check(tmp_path: Path) -> None:
    result = smoke(tmp_path, "--dry-run", "--duration", "3", ITE_FAKE_SMOKE_SKEW="temperature.gpu=5,power.draw=200")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("temperature") and line.endswith("FAIL") for line in lines)
    assert any(line.startswith("energy gpu 0") and line.endswith("FAIL") for line in lines)
    assert any(line.startswith("utilization") and line.endswith("PASS") for line in lines)
    assert lines[-1] == "SOME CHECKS FAILED"


@pytest.mark.e2e
def test_without_nvidia_smi_the_check_cannot_run_and_says_so(tmp_path: Path) -> None:
    bare = tmp_path / "bin"  # a PATH with only what the wrapper needs, even on a GPU machine
    bare.mkdir()
    (bare / "dirname").symlink_to(str(shutil.which("dirname")))
    result = smoke(tmp_path, "--duration", "1", PATH=str(bare))
    assert result.returncode == 2
    assert "nvidia-smi is not on PATH" in result.stderr
