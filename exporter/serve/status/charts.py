"""Sparklines: a series' history as the ``d`` of one SVG path in a fixed viewBox.

``static/status.js`` draws the same path from ``/api/v1/status`` with the same arithmetic (rounding
by ``floor(x * 10 + 0.5) / 10`` and the shortest float text), so a refreshed chart is identical to
the one the server rendered for the same snapshot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

WIDTH = 100.0
HEIGHT = 28.0
PAD = 2.0
"""Room at the top and bottom of the viewBox, so the stroke is never clipped."""


def number(value: float) -> str:
    """A coordinate rounded to 0.1 and written as JavaScript writes numbers (``20``, ``20.3``)."""
    tenths = math.floor(value * 10 + 0.5)
    if tenths < 0:
        return repr(tenths / 10).removesuffix(".0")
    whole, tenth = divmod(tenths, 10)
    return f"{whole}.{tenth}" if tenth else str(whole)


def sparkline(values: Sequence[float | None], slots: int) -> str:
    """The path through ``values`` (the newest at the right edge of ``slots``); gaps break the line."""
    known = [v for v in values if v is not None]
    if not known or slots < 2:
        return ""
    low, high = min(0.0, *known), max(known)
    if high == low:
        high = low + 1.0
    offset = slots - len(values)
    runs: list[list[str]] = [[]]
    for i, value in enumerate(values):
        if value is None:
            runs.append([])
            continue
        x = (offset + i) / (slots - 1) * WIDTH
        y = HEIGHT - PAD - (value - low) / (high - low) * (HEIGHT - 2 * PAD)
        runs[-1].append(f"{number(x)} {number(y)}")
    return "".join(_run(points) for points in runs if points)


def _run(points: list[str]) -> str:
    """One unbroken stretch; a lone point becomes a dot (a zero-length line with round caps)."""
    return "M" + points[0] + ("h0" if len(points) == 1 else "".join("L" + p for p in points[1:]))
