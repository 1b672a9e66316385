"""A fast reader for the Prometheus text format that only looks at the families an adapter needs.

Inference servers expose hundreds of series we never use (vLLM's bodies run to hundreds of
kilobytes). Instead of parsing every line into objects, ``scan`` runs one compiled regular expression
that matches only lines starting with a wanted name, and parses labels only for those. Helpers then
group series by a label and sum counters, take gauges, and rebuild histograms in seconds.

Hostile input is bounded: the caller caps the body size, ``scan`` caps the number of sample lines and
rejects duplicate series, and every failure is a ``ParseError`` with a one-line reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping
from functools import lru_cache

from exporter.model import Histogram
from exporter.sources.servers._base import ParseError

Labels = dict[str, str]
Series = list[tuple[Labels, float]]

DEFAULT_MAX_SERIES = 50_000
_SAMPLE_LINE = re.compile(r"^[^#\s]", re.M)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\\n]|\\.)*)"')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
_ESCAPE = re.compile(r"\\[\\\"n]")


@lru_cache(maxsize=64)
def _line_pattern(names: frozenset[str]) -> re.Pattern[str]:
    alternation = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"^({alternation})(?:\{{(.*)\}})?[ \t]+(\S+)(?:[ \t]+-?\d+)?[ \t]*\r?$", re.M)


def scan(text: str, names: Collection[str], *, max_series: int = DEFAULT_MAX_SERIES) -> dict[str, Series]:
    """Return the samples of the wanted metric names (full sample names, such as ``x_bucket``).

    Raises ``ParseError`` for more than ``max_series`` sample lines, a duplicate series, or a value
    that is not a number.
    """
    count = count_series(text)
    if count > max_series:
        raise ParseError(f"body has {count} series, more than the limit of {max_series}")
    found: dict[str, Series] = {}
    seen: set[tuple[str, str]] = set()
    for match in _line_pattern(frozenset(names)).finditer(text):
        name, raw_labels, raw_value = match.group(1), match.group(2) or "", match.group(3)
        if (name, raw_labels) in seen:
            raise ParseError(f"duplicate series {name}{{{raw_labels}}}")
        seen.add((name, raw_labels))
        found.setdefault(name, []).append((parse_labels(raw_labels), _value(name, raw_value)))
    return found


def parse_labels(raw: str) -> Labels:
    """Parse the inside of ``{...}`` into a dict, unescaping values."""
    if not raw:
        return {}
    labels = dict(_LABEL.findall(raw))
    for key, value in labels.items():
        if "\\" in value:
            labels[key] = _ESCAPE.sub(lambda m: _ESCAPES[m.group(0)], value)
    return labels


def _value(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ParseError(f"{name}: value {raw[:40]!r} is not a number") from None


def mentions(text: str, *prefixes: str) -> bool:
    """Whether any sample or metadata line starts with one of the prefixes (a cheap detection test)."""
    return any(text.startswith(p) or f"\n{p}" in text or f"# TYPE {p}" in text for p in prefixes)


def sum_by(series: Iterable[tuple[Labels, float]], label: str, default: str = "") -> dict[str, float | None]:
    """Sum counter values per value of ``label``; a group with a negative or non-finite value is ``None``.

    A counter we cannot trust is better absent than summed into a wrong total.
    """
    sums: dict[str, float | None] = {}
    for labels, value in series:
        key = labels.get(label, default)
        current = sums.get(key, 0.0)
        good = math.isfinite(value) and value >= 0
        sums[key] = current + value if current is not None and good else None
    return sums


def max_by(series: Iterable[tuple[Labels, float]], label: str, default: str = "") -> dict[str, float]:
    """The largest finite gauge value per value of ``label`` (non-finite values are skipped)."""
    out: dict[str, float] = {}
    for labels, value in series:
        if math.isfinite(value):
            key = labels.get(label, default)
            out[key] = max(out.get(key, value), value)
    return out


def gauge_sum_by(series: Iterable[tuple[Labels, float]], label: str, default: str = "") -> dict[str, float]:
    """Sum finite, non-negative gauge values (requests running, waiting) per value of ``label``."""
    out: dict[str, float] = {}
    for labels, value in series:
        if math.isfinite(value) and value >= 0:
            key = labels.get(label, default)
            out[key] = out.get(key, 0.0) + value
    return out


def histograms_by(
    found: Mapping[str, Series], base: str, label: str, *, scale: float = 1.0, default: str = ""
) -> dict[str, Histogram]:
    """Rebuild the histogram ``base`` per value of ``label``, summing other labels, bounds times ``scale``.

    A group whose counts are not finite and non-negative, or whose buckets lack ``+Inf``, is left out.
    """
    buckets: dict[str, dict[float, float]] = {}
    for labels, value in found.get(f"{base}_bucket", ()):
        bound = _bound(labels.get("le"))
        if bound is not None:
            group = buckets.setdefault(labels.get(label, default), {})
            group[bound] = group.get(bound, 0.0) + value
    counts = sum_by(found.get(f"{base}_count", ()), label, default)
    sums = _finite_sum_by(found.get(f"{base}_sum", ()), label, default)
    out: dict[str, Histogram] = {}
    for key, group in buckets.items():
        histogram = _histogram(group, counts.get(key), sums.get(key), scale)
        if histogram is not None:
            out[key] = histogram
    return out


def _bound(raw: str | None) -> float | None:
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def _finite_sum_by(series: Iterable[tuple[Labels, float]], label: str, default: str) -> dict[str, float | None]:
    sums: dict[str, float | None] = {}
    for labels, value in series:
        key = labels.get(label, default)
        current = sums.get(key, 0.0)
        sums[key] = current + value if current is not None and math.isfinite(value) else None
    return sums


def _histogram(group: dict[float, float], count: float | None, total: float | None, scale: float) -> Histogram | None:
    if math.inf not in group or count is None or total is None:
        return None
    values = list(group.values())
    if not all(math.isfinite(v) and v >= 0 for v in values):
        return None
    pairs = tuple((bound * scale if math.isfinite(bound) else bound, group[bound]) for bound in sorted(group))
    return Histogram(buckets=pairs, count=count, sum=total * scale)


def process_start_time(found: Mapping[str, Series]) -> float | None:
    """The standard ``process_start_time_seconds`` gauge, where the body has it."""
    series = found.get("process_start_time_seconds")
    return series[0][1] if series and math.isfinite(series[0][1]) else None


def count_series(text: str) -> int:
    """Number of sample lines (lines that are neither blank nor comments)."""
    return len(_SAMPLE_LINE.findall(text))
