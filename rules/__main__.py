"""Write (or, with ``--check``, verify) the generated rule files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rules.build import RULES_DIR, documents
from rules.settings import DEFAULT_PATH, SettingsError, load


def stale_files(files: dict[str, str], out: Path) -> list[str]:
    """Names of the files under ``out`` that are missing or differ from ``files``."""
    return [name for name, content in files.items() if _read(out / name) != content]


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rules", description=__doc__)
    parser.add_argument("--settings", type=Path, default=DEFAULT_PATH, help="settings file (rules/settings.yml)")
    parser.add_argument("--out", type=Path, default=RULES_DIR, help="directory to write into (rules/)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the files in --out are stale")
    args = parser.parse_args(argv)
    try:
        files = documents(load(args.settings))
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.check:
        stale = stale_files(files, args.out)
        for name in stale:
            print(f"{args.out / name} is stale: run `make dashboards`", file=sys.stderr)
        return 1 if stale else 0
    for name, content in files.items():
        (args.out / name).write_text(content, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
