"""Measure the status page's costs: history memory per series, time to record a snapshot, time to render.

    .venv/bin/python -m bench.status_page [--models 2] [--gpus 8]

The snapshots are synthetic (``tests.status_snapshots``, their figures moving from one to the next)
and the history is filled for a full hour of one-second polls, so every chart is full.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable

from exporter.config import Config
from exporter.model import Snapshot
from exporter.serve.status import Links, StatusBoard
from exporter.serve.status.view import points
from tests import status_snapshots as make


def snapshot(t: float, models: int, gpus: int) -> Snapshot:
    """One server per model on GPU 0, and ``gpus`` GPUs, their figures moving with ``t``."""
    wave = (t % 97) / 97
    moving = {"waiting": wave, "running": 10 + wave, "requests": 2 * (1 + wave)}
    servers = tuple(
        make.server(f"server-{i}", {f"model-{i}": 1000 * (1 + wave)}, t=t, gpus=(0,), **moving) for i in range(models)
    )
    return make.snapshot(t, servers, tuple(make.gpu(g, wave) for g in range(gpus)))


def _best(action: Callable[[], object], runs: int = 5) -> float:
    """The fastest of a few runs, in seconds: the machine may be busy with other work."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=2)
    parser.add_argument("--gpus", type=int, default=8)
    args = parser.parse_args()
    config = Config(poll_interval=1.0)
    snaps = [snapshot(make.T0 + s, args.models, args.gpus) for s in range(3600)]
    series = sum(1 for _ in points(snaps[0]))

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    board = StatusBoard(config, snaps[0])
    for snap in snaps:
        board.record(snap, config)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()

    record_us = _best(lambda: [board.record(snap, config) for snap in snaps[:100]]) / 100 * 1e6
    json_ms = _best(lambda: (board.record(snaps[-1], config), board.json())) * 1e3
    page_ms = _best(lambda: (board.record(snaps[-1], config), board.html(Links()))) * 1e3
    both_ms = _best(lambda: (board.record(snaps[-1], config), board.json(), board.html(Links()))) * 1e3
    html, body = board.html(Links()), board.json()

    shape = f"{args.models} models × 8 figures + {args.gpus} GPUs × 5"
    print(f"series: {series} ({shape}), history slots: {board.history.slots}")
    print(f"history memory after an hour: {held / 1024:,.1f} KiB, {held / series:,.0f} bytes per series")
    print(f"record one snapshot: {record_us:,.0f} µs")
    print(f"json alone (what each refresh asks for): {json_ms:,.1f} ms, {len(body) / 1024:,.1f} KiB")
    print(f"page alone (a first visit): {page_ms:,.1f} ms, {len(html) / 1024:,.1f} KiB; both: {both_ms:,.1f} ms")
    page_gz, json_gz = len(board.html(Links(), compress=True)), len(board.json(compress=True))
    print(f"gzip: page {page_gz / 1024:,.1f} KiB, json {json_gz / 1024:,.1f} KiB")


if __name__ == "__main__":
    main()
