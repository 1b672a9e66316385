"""Upstream parsing: the exporter's adapters against ``prometheus_client``'s parser on the same bodies.

The vLLM bodies are the recorded vLLM 0.33 body (two data-parallel engines, 82 KB: a real-sized
body) and the same grown to several models and engines (about 1 MB, as a node serving several
models behind one vLLM front end exposes); the TGI body is
the recorded TGI 3.x router body as it is (TGI has no labels to grow it by). The baseline parses the
whole body with ``prometheus_client.parser.text_string_to_metric_families`` and hands the samples to
the same adapter code, so only the reading of the text differs; both must give identical
normalized samples.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Callable, Collection, Iterator

from prometheus_client.parser import text_string_to_metric_families

from bench.common import ROOT, Row, median, ms, times
from bench.upstream import vllm_template
from exporter.model import ServerSample
from exporter.sources.servers import _text, get_adapter

FIXTURES = ROOT / "tests" / "fixtures" / "servers"
RATIO_TARGET = 5.0
_ENGINE = re.compile(r'engine="(\d+)"')
_MODEL = 'model_name="Qwen/Qwen3-8B"'


def large_vllm_body(models: int = 5, engines: int = 5) -> str:
    """The recorded vLLM body with ``models`` models, each on ``engines`` data-parallel engines."""
    out: list[str] = []
    for line in (FIXTURES / "vllm-0.33.0-reconstructed.prom").read_text(encoding="utf-8").splitlines():
        engine = _ENGINE.search(line)
        if line.startswith("#") or _MODEL not in line:
            out.append(line)
        elif engine is None:
            out += [_grown(line, m, None) for m in range(models)]
        elif engine.group(1) == "0":
            out += [_grown(line, m, e) for m in range(models) for e in range(engines)]
    return "\n".join(out) + "\n"


def _grown(line: str, model: int, engine: int | None) -> str:
    """One sample line for another model and engine; values scaled so that each series differs."""
    head, _, value = line.rpartition(" ")
    head = head.replace(_MODEL, f'model_name="org/model-{model}"')
    if engine is not None:
        head = head.replace('engine="0"', f'engine="{engine}"')
    scale = 1 if head.split("{", 1)[0].endswith("_created") else (model + 1) * ((engine or 0) + 1)
    return f"{head} {float(value) * scale!r}"


def client_scan(text: str, names: Collection[str], *, max_series: int | None = None) -> dict[str, _text.Series]:
    """What ``_text.scan`` returns, read the usual way: every family parsed by ``prometheus_client``.

    ``prometheus_client`` adds ``_total`` to counter samples that lack it (TGI's); they are mapped back.
    """
    wanted = frozenset(names)
    found: dict[str, _text.Series] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if name not in wanted and family.type == "counter" and name.removesuffix("_total") in wanted:
                name = name.removesuffix("_total")
            if name in wanted:
                found.setdefault(name, []).append((dict(sample.labels), float(sample.value)))
    return found


@contextlib.contextmanager
def reading_with(scan: Callable[..., dict[str, _text.Series]]) -> Iterator[None]:
    """Make every adapter module read bodies with ``scan`` instead of ``_text.scan`` inside the block."""
    ours = _text.scan
    modules = [
        module
        for name, module in sys.modules.items()
        if name.startswith("exporter.sources.servers.")
        and module is not _text
        and getattr(module, "scan", None) is ours
    ]
    for module in modules:
        module.scan = scan  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in modules:
            module.scan = ours  # type: ignore[attr-defined]


def _time(parse: Callable[[str], ServerSample], body: str) -> float:
    """CPU seconds of one parse: on a shared machine, wall time would also count other processes' turns."""
    started = time.process_time()
    parse(body)
    return time.process_time() - started


def compare(kind: str, body: str, repeats: int) -> tuple[float, float, bool]:
    """Median parse time of ours and of the baseline (alternating), and whether the results are identical."""
    parse = get_adapter(kind).parse
    ours_result = parse(body)
    with reading_with(client_scan):
        base_result = parse(body)
    ours: list[float] = []
    base: list[float] = []
    for _ in range(repeats):
        ours.append(_time(parse, body))
        with reading_with(client_scan):
            base.append(_time(parse, body))
    return median(ours), median(base), ours_result == base_result


def fleet(servers: int = 64, rounds: int = 3) -> tuple[float, float, bool]:
    """Per body, the median of parsing the recorded vLLM body served by ``servers`` servers (a model name
    each, as a fleet serves them), read round-robin as a poll does, by ours and by the baseline."""
    template = vllm_template(engines=2)
    bodies = [template.for_model(f"org/model-{i:04d}").render(1000.0 + i).decode() for i in range(servers)]
    parse = get_adapter("vllm").parse
    with reading_with(client_scan):
        base = [_time(parse, body) for body in bodies]
        expected = [parse(body) for body in bodies[:4]]
    same = [parse(body) for body in bodies[:4]] == expected
    ours = [_time(parse, body) for _ in range(rounds) for body in bodies]
    return median(ours), median(base), same


def run(*, full: bool = False) -> list[Row]:
    """vLLM (as recorded, 82 KB, and grown to about 1 MB) and TGI (as recorded)."""
    repeats = 30 if full else 10
    bodies = [
        ("vllm", (FIXTURES / "vllm-0.33.0-reconstructed.prom").read_text(encoding="utf-8"), 5 * repeats),
        ("vllm", large_vllm_body(), repeats),
        ("tgi", (FIXTURES / "tgi-3.x.prom").read_text(encoding="utf-8"), repeats),
    ]
    out: list[Row] = []
    for kind, body, times_over in bodies:
        ours, base, same = compare(kind, body, times_over)
        lines = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
        name = f"parse {kind} ({len(body) / 1024:.0f} KiB, {lines} samples)"
        out.append(Row(name, "identical normalized result", "yes" if same else "NO", met=same))
        ratio = base / ours
        target = f"≥ {RATIO_TARGET:g}×"
        out.append(Row(name, "parse time (median)", ms(ours), ms(base), times(ratio), target, ratio >= RATIO_TARGET))
    ours, base, same = fleet()
    name = "parse vllm, a fleet: 64 servers' recorded bodies (82 KB, a model each), round-robin"
    out.append(Row(name, "identical normalized result", "yes" if same else "NO", met=same))
    out.append(Row(name, "parse time per body (median)", ms(ours), ms(base), times(base / ours)))
    return out


if __name__ == "__main__":
    from bench.common import table

    print(table(run()))
