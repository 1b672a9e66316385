"""Write (or, with ``--check``, verify) the generated rule files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dashboards.generated import write_or_check
from rules.build import RULES_DIR, documents
from rules.settings import DEFAULT_PATH, SettingsError, load


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
    return write_or_check(files, args.out, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
