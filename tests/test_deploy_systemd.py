"""The systemd unit, checked by systemd itself: ``systemd-analyze verify`` and ``security --offline``.

``verify`` insists that ``ExecStart``'s program exists, so the test points the unit's install prefix
(``/opt/inference-throughput-exporter``) at this environment's console script and changes nothing
else. ``security`` rates the shipped file as it is, and docs/deployment.md must quote the same figure.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.cli import build_parser
from tests.conftest import require_tool
from tests.helpers import read_config

ROOT = Path(__file__).parent.parent
SYSTEMD = ROOT / "deploy" / "systemd"
UNIT = SYSTEMD / "inference-throughput-exporter.service"
PREFIX = "/opt/inference-throughput-exporter"
MAX_EXPOSURE = 3.0


def analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    tool = require_tool("systemd-analyze", "Debian package systemd")
    return subprocess.run([tool, *args], cwd=cwd, check=False, capture_output=True, text=True, timeout=120)


def directives(text: str) -> list[tuple[str, str]]:
    """(key, value) of every setting line, in order (a unit may repeat keys)."""
    lines = (line.strip() for line in text.splitlines())
    return [tuple(line.split("=", 1)) for line in lines if "=" in line and not line.startswith("#")]  # type: ignore[misc]


def exposure(output: str) -> float:
    match = re.search(r"Overall exposure level for inference-throughput-exporter\.service: (\d+\.\d)", output)
    assert match, output[-2000:]
    return float(match.group(1))


def test_systemd_analyze_verify_finds_nothing_to_report(tmp_path: Path) -> None:
    entry_point = Path(sys.executable).parent / "inference-throughput-exporter"
    assert entry_point.exists(), "the project is installed in this environment"
    text = UNIT.read_text(encoding="utf-8")
    local = text.replace(f"{PREFIX}/bin/inference-throughput-exporter", str(entry_point))
    changed = [line for line in local.splitlines() if line not in text.splitlines()]
    assert [line.split("=", 1)[0] for line in changed] == ["ExecStart"], "only the install prefix differs"
    (tmp_path / UNIT.name).write_text(local, encoding="utf-8")
    result = analyze("verify", f"./{UNIT.name}", cwd=tmp_path)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_systemd_analyze_verify_would_report_a_broken_setting(tmp_path: Path) -> None:
    entry_point = Path(sys.executable).parent / "inference-throughput-exporter"
    text = UNIT.read_text(encoding="utf-8").replace(f"{PREFIX}/bin/inference-throughput-exporter", str(entry_point))
    (tmp_path / UNIT.name).write_text(text.replace("Restart=on-failure", "Restart=sometimes"), encoding="utf-8")
    result = analyze("verify", f"./{UNIT.name}", cwd=tmp_path)
    assert "restart specifier, ignoring: sometimes" in result.stderr


def test_the_unit_is_rated_ok_or_better_and_readme_quotes_the_figure() -> None:
    result = analyze("security", "--offline=yes", "--threshold=30", f"./{UNIT.name}", cwd=SYSTEMD)
    level = exposure(result.stdout)
    assert result.returncode == 0 and level <= MAX_EXPOSURE, result.stdout[-3000:]
    assert "OK" in result.stdout.splitlines()[-1] or "SAFE" in result.stdout.splitlines()[-1]
    page = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    assert f"rates the unit **{level}**" in page, "docs/deployment.md must quote the current figure"
    assert f"rates this unit {level}" in UNIT.read_text(encoding="utf-8")


def test_the_unit_runs_unprivileged_reloads_on_sighup_and_tells_systemd_when_ready() -> None:
    settings = directives(UNIT.read_text(encoding="utf-8"))
    single = dict(settings)
    assert single["Type"] == "notify"
    assert single["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert single["Restart"] == "on-failure"
    assert single["DynamicUser"] == "yes" and single["NoNewPrivileges"] == "yes"
    assert single["CapabilityBoundingSet"] == "" and single["AmbientCapabilities"] == ""
    assert single["ProtectSystem"] == "strict" and single["DevicePolicy"] == "closed"
    assert single["EnvironmentFile"] == "-/etc/default/inference-throughput-exporter"
    assert re.fullmatch(r"\d+M", single["MemoryMax"])
    allowed = [value for key, value in settings if key == "DeviceAllow"]
    assert all(v.startswith("char-nvidia") for v in allowed) and "char-nvidia-caps r" in allowed


def test_the_example_config_and_flags_are_accepted_by_the_exporter() -> None:
    read_config(SYSTEMD / "config.yml")
    (exec_start,) = [v for k, v in directives(UNIT.read_text(encoding="utf-8")) if k == "ExecStart"]
    env = dict(directives((SYSTEMD / "inference-throughput-exporter.env").read_text(encoding="utf-8")))
    flags = shlex.split(exec_start)[1:-1] + shlex.split(shlex.split(env["EXPORTER_ARGS"])[0])
    args = build_parser().parse_args(flags)
    assert args.config_file == "/etc/inference-throughput-exporter/config.yml"
    assert args.listen == ":9842"


@pytest.mark.parametrize("name", ["config.yml", "inference-throughput-exporter.env"])
def test_the_installed_files_carry_their_install_path(name: str) -> None:
    text = (SYSTEMD / name).read_text(encoding="utf-8")
    target = {"config.yml": "/etc/inference-throughput-exporter/config.yml"}.get(
        name, "/etc/default/inference-throughput-exporter"
    )
    assert target in text and target in UNIT.read_text(encoding="utf-8")
