"""Write generated files into a folder, or check that the committed ones there are current.

Shared by ``python -m dashboards``, ``python -m rules`` and ``python -m rules.bundles``: all regenerate
with ``make dashboards``. A name may hold folders (``rules/alerts.yml``); they are created.
"""

from __future__ import annotations

import sys
from pathlib import Path


def stale_files(files: dict[str, str], out: Path) -> list[str]:
    """Names of the files under ``out`` that are missing or differ from ``files``."""
    return [name for name, content in files.items() if _read(out / name) != content]


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


def write_or_check(files: dict[str, str], out: Path, *, check: bool) -> int:
    """Write ``files`` (name → content) into ``out``; with ``check``, write nothing and return 1 if any is stale."""
    if check:
        stale = stale_files(files, out)
        for name in stale:
            print(f"{out / name} is stale: run `make dashboards`", file=sys.stderr)
        return 1 if stale else 0
    for name, content in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(content, encoding="utf-8")
    return 0
