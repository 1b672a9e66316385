"""The Dockerfile, read rather than built (no container runtime here): stages, user, what it copies."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


def instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined and comments dropped."""
    text = DOCKERFILE.replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins, ``!`` re-includes."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        if fnmatch.fnmatch(path, pattern.removeprefix("!").rstrip("/")):
            result = not negate
    return result


def test_the_image_is_built_in_one_stage_and_run_from_another_as_a_numeric_non_root_user() -> None:
    froms = [args for op, args in instructions() if op == "FROM"]
    assert len(froms) == 2 and froms[0].endswith(" AS build")
    users = [args for op, args in final_stage() if op == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) != 0


def test_the_entry_point_is_the_console_script_and_the_port_is_the_default() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    (entry,) = [args for op, args in final_stage() if op == "ENTRYPOINT"]
    assert entry == f'["{next(iter(scripts))}"]'
    assert ("EXPOSE", "9842") in final_stage()


def test_the_build_context_keeps_what_the_dockerfile_copies_and_drops_the_rest() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = [arg for op, args in instructions() if op == "COPY" and "--from" not in args for arg in args.split()[:-1]]
    assert copied == ["pyproject.toml", "README.md", "exporter"]
    assert not any(ignored(path, patterns) for path in copied)
    assert ignored(".venv", patterns) and ignored("tests", patterns) and ignored(".git", patterns)
