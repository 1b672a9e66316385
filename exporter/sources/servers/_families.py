"""Parse a body from a table that says which of the server's families feeds each normalized value.

Most servers differ only in names: which family holds the prompt tokens, which label names the
model, which histogram is the time to first token. An adapter states that in a ``Table`` and
``read`` does the rest with the helpers of ``_text``, per model:

- counters are summed over every other label (engines, ranks, finish reasons); a counter with a
  negative or non-finite value is left out rather than summed into a wrong total;
- gauges (requests running, waiting) are summed, skipping values that are negative or not finite;
- ratios (KV cache usage) take the largest value, clamped to 0..1, so one full engine shows;
- per-GPU counters (estimated FLOPs per GPU) are averaged over engines and ranks, each of which counts
  for its own GPUs, so two engines of one model do not look like one twice as busy;
- histograms are rebuilt with the server's own buckets, converted to seconds.

Where a value lists several alternatives, the first one the body has wins (newest names first). A
counter alternative may add several families up, such as successful plus failed requests, and may
take only the series of a family whose label has given values (``Where``), such as the prefill
categories of SGLang's GPU time.

A gauge that a multiprocess ``prometheus_client`` renders once per process (``multiprocess_mode``
"all", as vLLM's ``kv_cache_usage_perc`` with ``--api-server-count`` above 1 and every TensorRT-LLM
gauge) carries a ``pid`` label: one engine-wide value copied to, or stale in, each API-server
process. Of the series that differ only in ``pid``, the largest is kept (``one_per_process``), so
copies are never added up. Counters and histograms are summed across processes by the server itself.

One server's families can reach us under several prefixes (vLLM's own ``vllm:``, Ray Serve's
``ray_vllm_``): ``Spellings`` holds one table per prefix and reads a body with the first whose
families it has, alone, so a body is never counted twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from exporter.model import (
    HISTOGRAM_NAMES,
    SAMPLE_FIELDS,
    FieldKind,
    Histogram,
    ModelSample,
    ServerSample,
    TokenCounting,
)
from exporter.sources.servers._base import Adapter, ExtraEndpoint, ParseError, Verdict, register
from exporter.sources.servers._text import (
    Labels,
    Series,
    gauge_sum_by,
    histograms_by,
    max_by,
    mentions,
    process_start_time,
    scan,
    sum_by,
)


@dataclass(frozen=True, slots=True)
class Where:
    """The series of ``family`` whose ``label`` is one of ``values`` (a counter split by a label)."""

    family: str
    label: str
    values: frozenset[str]

    def select(self, series: Series) -> Series:
        """The series that match."""
        return [(labels, value) for labels, value in series if labels.get(self.label) in self.values]


Family = str | Where
"""A family name, or part of a family selected by a label."""
Alternatives = tuple[tuple[Family, ...], ...]
"""Counter alternatives, first present wins; the families of one alternative add up."""
Values = dict[str, float | None]
"""Per model name."""

CORE_COUNTERS = ("prompt_tokens", "generation_tokens", "requests_finished")
"""The counters every engine keeps from its start: where a stack exports a counter only once it has
moved (Ray), a model shown without one has counted 0. Other counters (cache hits, GPU time) may be
missing because the engine's version or flags lack them, so they are never filled in."""
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
PROCESS_LABEL = "pid"
"""The label a multiprocess ``prometheus_client`` adds to a gauge rendered once per process."""


def _keep(series: Series) -> Series:
    return series


@dataclass(frozen=True, slots=True)
class Table:
    """Where one server keeps each normalized value. Family names are given without ``prefix``."""

    prefix: str
    model_label: str
    """The label that names the model; ``""`` for servers without one (every series is model ``""``)."""
    counters: Mapping[str, Alternatives] = field(default_factory=dict)
    gauges: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ratios: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    per_gpu_counters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Normalized per-GPU counter → the server's families, first present wins; averaged per model."""
    histograms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Normalized histogram name → the server's histogram families (without suffixes)."""
    histogram_scale: float = 1.0
    """Factor that turns the server's bucket bounds and sums into seconds."""
    select: Callable[[Series], Series] = _keep
    """Applied to every family's series before grouping (SGLang drops replicated ranks here)."""
    zero_when_absent: bool = False
    """The server exports a counter only once it has moved (Ray): a model with any series counts 0 without one."""

    def __post_init__(self) -> None:
        """Check every key against the normalized names, so a typo fails when the adapter's module loads."""
        for keys, kind in ((self.counters, FieldKind.COUNTER), (self.gauges, FieldKind.GAUGE)):
            check_fields(keys, kind)
        check_fields(self.ratios, FieldKind.RATIO)
        check_fields(self.per_gpu_counters, FieldKind.PER_GPU_COUNTER)
        unknown = sorted(set(self.histograms) - set(HISTOGRAM_NAMES))
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a normalized histogram (one of: {', '.join(HISTOGRAM_NAMES)})")

    def names(self) -> frozenset[str]:
        """Every sample name to scan for."""
        return self.families() | {"process_start_time_seconds"}

    def families(self) -> frozenset[str]:
        """The sample names of the server's own families (under ``prefix``) that the table reads."""
        names: set[str] = set()
        for alternatives in self.counters.values():
            names.update(self.prefix + family_name(family) for families in alternatives for family in families)
        for families in (*self.gauges.values(), *self.ratios.values(), *self.per_gpu_counters.values()):
            names.update(self.prefix + family for family in families)
        for families in self.histograms.values():
            names.update(self.prefix + f + suffix for f in families for suffix in HISTOGRAM_SUFFIXES)
        return frozenset(names)


def check_fields(keys: Iterable[str], kind: FieldKind | None = None) -> None:
    """Raise ``ValueError`` unless every key names a normalized value (of ``kind``): ``model.SAMPLE_FIELDS``."""
    valid = [name for name, of in SAMPLE_FIELDS.items() if kind is None or of is kind]
    for key in keys:
        if key not in valid:
            what = f"normalized {kind.value}" if kind is not None else "normalized value"
            raise ValueError(f"{key!r} is not a {what} (one of: {', '.join(valid)})")


@dataclass(frozen=True, slots=True)
class Readings:
    """What a table read from one body: values per field and model, histograms per name and model."""

    values: dict[str, Values]
    histograms: dict[str, dict[str, Histogram]]

    def model_names(self) -> set[str]:
        """Every model that has at least one value or histogram."""
        names = {model for per_model in self.values.values() for model in per_model}
        return names | {model for per_model in self.histograms.values() for model in per_model}


def read(found: Mapping[str, Series], table: Table) -> Readings:
    """Apply a table to scanned samples."""
    selected = {name: table.select(series) for name, series in found.items()}
    values: dict[str, Values] = {}
    for name, alternatives in table.counters.items():
        values[name] = counter(selected, table.prefix, alternatives, table.model_label)
    for name, families in table.gauges.items():
        hit = first(selected, table.prefix, families)
        values[name] = dict(gauge_sum_by(one_per_process(hit), table.model_label)) if hit is not None else {}
    for name, families in table.ratios.items():
        hit = first(selected, table.prefix, families)
        ratios = max_by(one_per_process(hit), table.model_label) if hit is not None else {}
        values[name] = {m: clamp(v) for m, v in ratios.items()}
    for name, families in table.per_gpu_counters.items():
        hit = first(selected, table.prefix, families)
        values[name] = mean_by(hit, table.model_label) if hit is not None else {}
    readings = Readings(values, histograms(selected, table))
    if not table.zero_when_absent:
        return readings
    return with_zero_counters(readings, [name for name in CORE_COUNTERS if name in table.counters])


def one_per_process(series: Series) -> Series:
    """Of the series that differ only in ``pid`` (one gauge rendered per process), keep the largest finite one."""
    if not any(PROCESS_LABEL in labels for labels, _ in series):
        return series
    largest: dict[frozenset[tuple[str, str]], tuple[Labels, float]] = {}
    for labels, value in series:
        key = frozenset((k, v) for k, v in labels.items() if k != PROCESS_LABEL)
        kept = largest.get(key)
        if kept is None or (math.isfinite(value) and not (math.isfinite(kept[1]) and kept[1] >= value)):
            largest[key] = (labels, value)
    return list(largest.values())


def with_zero_counters(readings: Readings, fields: Iterable[str], *, also: Iterable[str] = ()) -> Readings:
    """The readings with 0 for each counter of ``fields`` that a model (of theirs or ``also``) has no series of."""
    models = readings.model_names() | set(also)
    values = dict(readings.values)
    for name in fields:
        values[name] = {**dict.fromkeys(models, 0.0), **values.get(name, {})}
    return Readings(values, readings.histograms)


def family_name(family: Family) -> str:
    """The name of the family (without the table's prefix)."""
    return family.family if isinstance(family, Where) else family


def mean_by(series: Series, label: str) -> Values:
    """Per model, the mean of counter values over the other labels; ``None`` for a group with a bad value."""
    totals = sum_by(series, label)
    counts: dict[str, int] = {}
    for labels, _value in series:
        counts[labels.get(label, "")] = counts.get(labels.get(label, ""), 0) + 1
    return {model: total / counts[model] if total is not None else None for model, total in totals.items()}


def first(found: Mapping[str, Series], prefix: str, families: tuple[str, ...]) -> Series | None:
    """The series of the first family the body has."""
    for family in families:
        if prefix + family in found:
            return found[prefix + family]
    return None


def counter(found: Mapping[str, Series], prefix: str, alternatives: Alternatives, label: str) -> Values:
    """Per model, the sum of the families of the first alternative the body has any of."""
    for families in alternatives:
        present = [_series(found[prefix + family_name(f)], f) for f in families if prefix + family_name(f) in found]
        if present:
            return add_up([sum_by(series, label) for series in present])
    return {}


def _series(series: Series, family: Family) -> Series:
    return family.select(series) if isinstance(family, Where) else series


def add_up(parts: list[Values]) -> Values:
    """Add per-model values; a model that is ``None`` in any part stays ``None``."""
    total: Values = {}
    for part in parts:
        for model, value in part.items():
            current = total.get(model, 0.0)
            total[model] = None if current is None or value is None else current + value
    return total


def histograms(found: Mapping[str, Series], table: Table) -> dict[str, dict[str, Histogram]]:
    """Per normalized name, the first of the table's families that yields a histogram, per model."""
    out: dict[str, dict[str, Histogram]] = {}
    for name, families in table.histograms.items():
        for family in families:
            per_model = histograms_by(found, table.prefix + family, table.model_label, scale=table.histogram_scale)
            if per_model:
                out[name] = per_model
                break
    return out


def clamp(ratio: float) -> float:
    """Clamp a ratio to 0..1 (servers round, and some report a hair above 1)."""
    return min(max(ratio, 0.0), 1.0)


def model_sample(model: str, readings: Readings) -> ModelSample:
    """The normalized sample of one model."""

    values = {name: readings.values.get(name, {}).get(model) for name in SAMPLE_FIELDS}
    histograms = {name: per_model[model] for name, per_model in readings.histograms.items() if model in per_model}
    return ModelSample(**values, histograms=histograms)


def to_sample(
    found: Mapping[str, Series], readings: Readings, *, kind: str, counting: TokenCounting, example: str
) -> ServerSample:
    """The sample of every model in ``readings``; raise ``ParseError`` (naming ``example``) when there is none."""
    models = readings.model_names()
    if not models:
        raise ParseError(f"no {kind} metrics found (expected families such as {example})")
    return ServerSample(
        kind=kind,
        models={model: model_sample(model, readings) for model in sorted(models)},
        token_counting=counting,
        process_start_time_seconds=process_start_time(found),
    )


class Spellings:
    """One server's families as each stack that serves them spells them: its own prefix first, then re-exports.

    A body is read with the first table whose families it has, and with that table alone.
    """

    def __init__(self, *tables: Table) -> None:
        if not tables:
            raise ValueError("Spellings needs at least one table")
        self.tables = tables
        self.names = frozenset().union(*(table.names() for table in tables))
        """Every sample name of every spelling: one scan finds whichever the body has."""
        self._families = tuple(table.families() for table in tables)

    def pick(self, found: Mapping[str, Series]) -> Table:
        """The first table whose families the scanned body has, else the first (the server's own)."""
        for table, families in zip(self.tables, self._families, strict=True):
            if not families.isdisjoint(found):
                return table
        return self.tables[0]

    def prefixes(self) -> tuple[str, ...]:
        """Every spelling's prefix, the server's own first."""
        return tuple(table.prefix for table in self.tables)


def merge(sources: list[Readings]) -> Readings:
    """Combine readings of one body from several tables: per value and model, the first source that has it wins."""
    values: dict[str, Values] = {}
    for source in sources:
        for name, per_model in source.values.items():
            merged = values.setdefault(name, {})
            for model, value in per_model.items():
                merged.setdefault(model, value)
    histograms: dict[str, dict[str, Histogram]] = {}
    for source in sources:
        for name, per_model_histograms in source.histograms.items():
            target = histograms.setdefault(name, {})
            for model, histogram in per_model_histograms.items():
                target.setdefault(model, histogram)
    return Readings(values, histograms)


def table_adapter(
    *,
    kind: str,
    description: str,
    table: Table,
    counting: TokenCounting,
    example: str,
    spellings: tuple[Table, ...] = (),
    detect: Callable[[str], Verdict] | None = None,
    ahead_of: tuple[str, ...] = (),
    extras: tuple[ExtraEndpoint, ...] = (),
) -> Adapter:
    """Register the adapter of a server that differs from others only in names: its ``table`` says them.

    ``parse`` reads the table's families (``example`` names one in the error for a body without any),
    or those of the first of ``spellings`` (the same families under another stack's prefix) that the
    body has instead. ``detect`` defaults to looking for any of their prefixes at the start of a line,
    which suits a prefix no other server uses; a server with look-alikes passes its own.
    """
    every = Spellings(table, *spellings)
    prefixes = every.prefixes()
    if detect is None and "" in prefixes:
        raise ValueError(f"{kind}: a table without a prefix needs its own detect")

    def parse(text: str) -> ServerSample:
        found = scan(text, every.names)
        return to_sample(found, read(found, every.pick(found)), kind=kind, counting=counting, example=example)

    def by_prefix(text: str) -> bool:
        return mentions(text, *prefixes)

    parse.__doc__ = f"Parse a {kind} body with its table."
    by_prefix.__doc__ = f"Whether a body has {' or '.join(prefixes)} families."
    verdict = detect or by_prefix
    return register(Adapter(kind, description, parse, verdict, ahead_of=ahead_of, extras=extras))
