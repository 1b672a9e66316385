"""Write (or, with ``--check``, verify) the generated dashboard JSON files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dashboards.build import DASHBOARDS_DIR, documents
from dashboards.generated import write_or_check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards", description=__doc__)
    parser.add_argument("--out", type=Path, default=DASHBOARDS_DIR, help="directory to write into (dashboards/)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the files in --out are stale")
    args = parser.parse_args(argv)
    return write_or_check(documents(), args.out, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
