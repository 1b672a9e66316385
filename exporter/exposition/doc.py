"""Render the metrics table of docs/metrics.md from ``exporter.exposition.metrics``, and its GPU peaks table.

``python -m exporter.exposition.doc`` prints the metrics table; ``--write docs/metrics.md`` replaces
both tables between their markers (the peaks come from ``exporter.sources.gpu.peaks``). A test fails
when the committed tables differ from what this writes.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from exporter.exposition.metrics import ALL, Metric
from exporter.sources.gpu.peaks import PEAK_FLOPS, SOURCES

START, END = "<!-- metrics-table:start -->", "<!-- metrics-table:end -->"
PEAKS_START, PEAKS_END = "<!-- peaks-table:start -->", "<!-- peaks-table:end -->"


def _row(metric: Metric) -> str:
    labels = ", ".join(f"`{label}`" for label in metric.labels) or "—"
    help_text = metric.help.replace("|", "\\|")
    return f"| `{metric.name}` | {metric.type} | {labels} | {help_text} | {metric.source} |"


def table() -> str:
    """The markdown table, one row per metric, in definition order."""
    head = "| name | type | labels | meaning | source |\n|---|---|---|---|---|"
    return "\n".join([head, *(_row(metric) for metric in ALL)])


def peaks_table() -> str:
    """The markdown table of dense BF16 peaks, one row per NVML product name, with its source."""
    head = "| NVML product name | dense BF16 TFLOP/s | source |\n|---|---|---|"
    rows = (f"| `{name}` | {peak / 1e12:g} | {SOURCES[name]} |" for name, peak in PEAK_FLOPS.items())
    return "\n".join([head, *rows])


def _between(text: str, start: str, end: str, body: str) -> str:
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    return pattern.sub(lambda _m: f"{start}\n{body}\n{end}", text)


def replace_table(text: str) -> str:
    """``text`` with the parts between the markers replaced by the current tables."""
    return _between(_between(text, START, END, table()), PEAKS_START, PEAKS_END, peaks_table())


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
