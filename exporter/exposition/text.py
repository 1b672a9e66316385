"""Format metric families as Prometheus text (0.0.4) or OpenMetrics (1.0.0).

A family is a ``Metric`` and its samples: ``(label values, value)`` where the value is a float, or a
``Histogram`` for histogram families. Families without samples are left out entirely.

``render`` makes the whole body at once; ``render_in_slices`` makes the same bytes a slice at a time
(about ``SLICE_LINES`` lines each), so that a caller on the event loop can let scrapes in between.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache

from exporter.exposition.metrics import Metric
from exporter.model import Histogram

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

Sample = tuple[tuple[str, ...], float | Histogram]
Family = tuple[Metric, Sequence[Sample]]

SLICE_LINES = 500
"""Lines per slice of ``render_in_slices``: about a quarter of a millisecond of rendering."""


_SPECIAL = {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}


def format_value(value: float) -> str:
    """Go-style float formatting as Prometheus expects (``+Inf``, ``NaN``, ``1.5``, ``1e+21``)."""
    text = repr(float(value))
    return _SPECIAL.get(text, text)  # one repr and a lookup: this runs for every sample of every render


@lru_cache(maxsize=1024)
def _le(bound: float) -> str:
    """A bucket bound as text; the same bounds recur in every series of a histogram family."""
    return format_value(bound)


def escape_label(value: str) -> str:
    """Escape a label value: backslash, double quote and newline."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def label_text(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    """``{a="1",b="2"}`` (with ``extra`` such as ``le="0.5"`` appended), or ``""`` without labels."""
    parts = [f'{n}="{escape_label(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def render(families: Iterable[Family], *, openmetrics: bool = False) -> bytes:
    """Render families in the text format, or OpenMetrics with ``openmetrics=True``."""
    return b"".join(render_in_slices(families, openmetrics=openmetrics, lines=0))


def render_in_slices(
    families: Iterable[Family], *, openmetrics: bool = False, lines: int = SLICE_LINES
) -> Iterator[bytes]:
    """The bytes of ``render``, in pieces of about ``lines`` lines (all at once with ``lines=0``)."""
    out: list[str] = []
    for metric, samples in families:
        if not samples:
            continue
        family_name, type_name = _header_name(metric, openmetrics)
        out.append(f"# HELP {family_name} {_escape_help(metric.help)}\n# TYPE {family_name} {type_name}\n")
        for label_values, value in samples:
            if isinstance(value, Histogram):
                _histogram(out, metric, label_values, value)
            else:
                out.append(f"{metric.name}{label_text(metric.labels, label_values)} {format_value(value)}\n")
            if lines and len(out) >= lines:
                yield "".join(out).encode("utf-8")
                out.clear()
    if openmetrics:
        out.append("# EOF\n")
    yield "".join(out).encode("utf-8")


def _header_name(metric: Metric, openmetrics: bool) -> tuple[str, str]:
    if metric.type == "info":
        return (metric.name.removesuffix("_info"), "info") if openmetrics else (metric.name, "gauge")
    if metric.type == "counter" and openmetrics:
        return metric.name.removesuffix("_total"), "counter"
    return metric.name, metric.type


def _histogram(out: list[str], metric: Metric, label_values: Sequence[str], histogram: Histogram) -> None:
    name = metric.name
    labels = label_text(metric.labels, label_values)
    # Bucket lines are most of a render and differ only in ``le`` and the count: their labels are
    # escaped and joined once per series, not once per bucket (3× faster rendering with histograms).
    bucket = f"{name}_bucket{labels[:-1]}," if labels else f"{name}_bucket{{"
    for bound, count in histogram.buckets:
        out.append(f'{bucket}le="{_le(bound)}"}} {format_value(count)}\n')
    out.append(f"{name}_sum{labels} {format_value(histogram.sum)}\n")
    out.append(f"{name}_count{labels} {format_value(histogram.count)}\n")
