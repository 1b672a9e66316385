"""Render the metrics table of docs/metrics.md from ``exporter.exposition.metrics``.

``python -m exporter.exposition.doc`` prints the table; ``--write docs/metrics.md`` replaces the table
between its markers. A test fails when the committed table differs from what this prints.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from exporter.exposition.metrics import ALL, Metric

START, END = "<!-- metrics-table:start -->", "<!-- metrics-table:end -->"


def _row(metric: Metric) -> str:
    labels = ", ".join(f"`{label}`" for label in metric.labels) or "—"
    help_text = metric.help.replace("|", "\\|")
    return f"| `{metric.name}` | {metric.type} | {labels} | {help_text} | {metric.source} |"


def table() -> str:
    """The markdown table, one row per metric, in definition order."""
    head = "| name | type | labels | meaning | source |\n|---|---|---|---|---|"
    return "\n".join([head, *(_row(metric) for metric in ALL)])


def replace_table(text: str) -> str:
    """``text`` with the part between the markers replaced by the current table."""
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    return pattern.sub(lambda _m: f"{START}\n{table()}\n{END}", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", metavar="FILE", help="rewrite the table in this file (docs/metrics.md)")
    args = parser.parse_args()
    if args.write:
        path = Path(args.write)
        path.write_text(replace_table(path.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        print(table())


if __name__ == "__main__":
    main()
