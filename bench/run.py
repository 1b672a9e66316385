"""Run every benchmark and print one table: each figure, its baseline measured in the same run, and the ratio.

    python -m bench.run                      # every benchmark, short spans (under 5 minutes)
    python -m bench.run --full               # the long spans (overhead, soak: 10 minutes each; about 45 minutes)
    python -m bench.run --only parse,scrape  # some of them

The machine is shared and its load drifts, so every benchmark measures its baseline in the same run
as the exporter (interleaved where it can) and the ratio between the two is the figure to compare
across machines. Benchmarks: ``parse`` (upstream parsing), ``scrape`` (``GET /metrics`` latency
while the exporter polls real servers, against ``prometheus_client``; and publishing's CPU),
``overhead`` (CPU and memory of the daemon), ``scale`` (servers per core), ``freshness`` (delay of a
step change, and the window-versus-noise table), ``nvml`` (the cost of a GPU read on a real GPU,
where there is one), ``soak`` and ``load`` (``bench/soak.py``, ``bench/load.py``). The default spans
are short, so re-run a figure that misses its target before believing it; ``--full`` measures longer.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from collections.abc import Callable

from bench.common import Row, machine, table
from exporter import logging as exporter_logging

BENCHMARKS = ("parse", "scrape", "overhead", "scale", "freshness", "nvml", "soak", "load")
"""In the order they run; each is ``bench.<name>.run(full=...)`` (``nvml``: ``bench.nvml_cost``)."""


def _runner(name: str) -> Callable[..., list[Row]]:
    module = importlib.import_module(f"bench.{'nvml_cost' if name == 'nvml' else name}")
    if name == "nvml":
        return lambda full: module.rows(module.measure(repeats=500 if full else 100))
    return module.run  # type: ignore[no-any-return]


def run(names: list[str], *, full: bool) -> tuple[list[Row], list[str]]:
    """Run the named benchmarks; a benchmark that fails becomes one row saying why, and the rest go on."""
    rows: list[Row] = []
    failed: list[str] = []
    for name in names:
        started = time.monotonic()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            rows += _runner(name)(full=full)
        except Exception as exc:  # one broken benchmark must not lose the others' figures
            traceback.print_exc()
            rows.append(Row(name, "failed", f"{type(exc).__name__}: {str(exc)[:120]}", met=False))
            failed.append(name)
        print(f"... {name} took {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return rows, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the long spans")
    parser.add_argument("--only", metavar="NAMES", help=f"comma-separated, of: {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    exporter_logging.configure("warn")  # the in-process exporter parts log servers coming up: not figures
    where = machine()
    rows, failed = run(names, full=args.full)
    print(f"Measured on: {where}\n")
    print(table(rows))
    missed = [r for r in rows if r.met is False]
    print(f"\n{len(rows) - len(missed)} of {len(rows)} rows meet their target or have none", end="")
    print(f"; not met: {', '.join(sorted({r.benchmark for r in missed}))}" if missed else "")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
