"""The fast paths of the line scanner find exactly what the plain regular expressions they replace find."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.sources.servers import _text
from tests.conftest import FIXTURES

NAME_PARTS = st.sampled_from(["vllm:", "tgi_", "x", "_total", "_bucket", "_sum", "a", "ab", ":", "/", "é"])
NAMES = st.lists(st.lists(NAME_PARTS, min_size=1, max_size=4).map("".join), min_size=1, max_size=6)
LINE_ENDS = st.sampled_from(["", " 1", '{a="1"} 2', "\t3 1700000000", "{", " ", "\r", "x 1", '{le="+Inf"} 4\r'])
REFERENCE_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\\n]|\\.)*)"')


def flat_pattern(names: list[str]) -> re.Pattern[str]:
    """The scanner's pattern before the prefix tree: one flat alternation anchored with ``^``."""
    alternation = "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True))
    return re.compile(rf"^({alternation})(?=[{{ \t\r]|$)(.*)$", re.M)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[list[str], str]:
    names = draw(NAMES)
    heads = st.one_of(st.sampled_from(names), NAME_PARTS, st.sampled_from(["#", "# TYPE x", "", " "]))
    lines = draw(st.lists(st.tuples(heads, LINE_ENDS).map("".join), max_size=12))
    return names, "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n"]))


@given(bodies())
def test_the_prefix_tree_pattern_finds_the_lines_a_flat_alternation_finds(case: tuple[list[str], str]) -> None:
    names, text = case
    fast = [m.group(1, 2) for m in _text._line_pattern(frozenset(names)).finditer("\n" + text)]
    assert fast == [m.group(1, 2) for m in flat_pattern(names).finditer(text)]


def test_no_names_match_no_line() -> None:
    assert _text.scan("a 1\nb 2\n", []) == {}


@given(bodies(), st.integers(min_value=0, max_value=15))
def test_the_series_limit_check_agrees_with_counting_every_line(case: tuple[list[str], str], limit: int) -> None:
    _, text = case
    assert _text.exceeds_series(text, limit) == (len(re.findall(r"^[^#\s]", text, re.M)) > limit)
    assert _text.count_series(text) == len(re.findall(r"^[^#\s]", text, re.M))


LABEL_VALUES = st.text(alphabet=st.sampled_from(["a", "é", '"', "\\", "n", ",", "=", " ", "}"]), max_size=8)


def reference_labels(raw: str) -> dict[str, str]:
    labels = dict(REFERENCE_LABEL.findall(raw))
    return {
        k: re.sub(r"\\[\\\"n]", lambda m: {"\\\\": "\\", '\\"': '"', "\\n": "\n"}[m.group(0)], v)
        for k, v in labels.items()
    }


@given(st.lists(st.tuples(st.sampled_from(["a", "le", "model_name", "a"]), LABEL_VALUES), max_size=5), st.booleans())
def test_label_sets_parse_the_same_whether_cached_or_not(pairs: list[tuple[str, str]], long: bool) -> None:
    escaped = [(k, v.replace("\\", "\\\\").replace('"', '\\"')) for k, v in pairs]
    raw = ",".join(f'{k}="{v}"' for k, v in escaped) + ("," + "x" * 300 + '="1"' if long else "")
    first = _text.parse_labels(raw)
    assert first == reference_labels(raw)
    first["mutated"] = "yes"  # callers own the dict they get: the cache must not hand it out again
    assert _text.parse_labels(raw) == reference_labels(raw)


def test_unescaping_survives_the_cache() -> None:
    raw = 'a="x\\"y",b="\\\\",c="q\\n"'
    for _ in range(2):
        assert _text.parse_labels(raw) == {"a": 'x"y', "b": "\\", "c": "q\n"}


# -- the one-pass scanner against the two-step reader it replaces -------------------------------

REFERENCE_REST = re.compile(
    r'(?:\{((?:[^"{}]++|"(?:[^"\\]++|\\.)*+")*+)\})?[ \t]+(\S+)(?:[ \t]+-?\d+)?(?:[ \t]+#.*)?[ \t]*\r?'
)


def reference_scan(text: str, names: list[str], max_line: int) -> dict[str, _text.Series]:
    """``scan`` as it was: find each wanted line, then read the rest of it whole with a second expression."""
    found: dict[str, _text.Series] = {}
    seen: set[tuple[str, str]] = set()
    for match in _text._line_pattern(frozenset(names)).finditer("\n" + text):
        name, rest = match.group(1), match.group(2)
        if len(rest) > max_line:
            raise _text.ParseError(f"{name}: a sample line of {len(rest)} characters, more than the limit")
        sample = REFERENCE_REST.fullmatch(rest)
        if sample is None:
            raise _text.ParseError(f"malformed or cut-short sample line: {_text._excerpt(name + rest)!r}")
        raw_labels, raw_value = sample.group(1) or "", sample.group(2)
        if (name, raw_labels) in seen:
            raise _text.ParseError(f"duplicate series {name}{{{_text._excerpt(raw_labels)}}}")
        seen.add((name, raw_labels))
        labels = reference_labels(raw_labels) if raw_labels else {}
        if len(labels) > _text.MAX_LABELS:
            raise _text.ParseError(f"{name}: {len(labels)} labels on one series, more than the limit")
        try:
            value = float(raw_value)
        except ValueError:
            raise _text.ParseError(f"{name}: value {raw_value[:40]!r} is not a number") from None
        found.setdefault(name, []).append((labels, value))
    return found


def outcome(read: Callable[[], dict[str, _text.Series]]) -> object:
    """What a reader returns, or the message it raises (compared as text: NaN never equals itself)."""
    try:
        return repr(read())
    except _text.ParseError as exc:
        return ("error", str(exc).split(", more than the limit")[0])


SCAN_NAMES = ["vllm:x", "vllm:x_bucket", "tgi_y", "z"]
WELL_FORMED_LABELS = ['a="1"', 'le="+Inf"', 'a="1",b="2"', 'a="1",', 'a = "1"', 'a="x\\"y"', 'a="\\\\"', 'a="q\\n"']
ODD_LABELS = ['a="{}"', 'a="1" b="2"', 'a="', 'a="1', '"', "a=1", 'a="1"}', 'a="é"', "", 'a="\\x"', 'a="1",a="2"']
LABEL_TEXTS = st.sampled_from([*WELL_FORMED_LABELS, *ODD_LABELS])
VALUES = st.sampled_from(["1", "-2.5", "NaN", "+Inf", "1e3", "x", "0x10", "1_0", "", "--1"])
TAILS = st.sampled_from(["", " 1700000000", " -12", " # {a=\"b\"} 1", "\t", " \r", "\r", " 1 2 3", " #"])
SEPARATORS = st.sampled_from([" ", "\t", "  ", "", "x "])


@st.composite
def hostile_bodies(draw: st.DrawFn) -> str:
    line = st.tuples(
        st.sampled_from([*SCAN_NAMES, "vllm:", "vllm:xy", "# HELP vllm:x", "", " z"]),
        st.one_of(st.just(""), LABEL_TEXTS.map(lambda text: "{" + text + "}"), st.just("{")),
        SEPARATORS,
        VALUES,
        TAILS,
    ).map("".join)
    lines = draw(st.lists(line, max_size=10))
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n"]))


@given(hostile_bodies(), st.sampled_from([16_384, 12, 3]))
def test_the_one_pass_scanner_reads_every_body_as_the_two_step_reader_did(text: str, max_line: int) -> None:
    original = _text.MAX_LINE_LENGTH
    _text.MAX_LINE_LENGTH = max_line
    try:
        fast = outcome(lambda: _text.scan(text, SCAN_NAMES))
    finally:
        _text.MAX_LINE_LENGTH = original
    assert fast == outcome(lambda: reference_scan(text, SCAN_NAMES, max_line))


def test_the_one_pass_scanner_reads_every_recorded_body_as_the_two_step_reader_did() -> None:
    for path in sorted((FIXTURES / "servers").glob("*.prom")):
        text = path.read_text(encoding="utf-8")
        names = sorted({re.split(r"[{ \t]", line, maxsplit=1)[0] for line in text.splitlines() if line[:1].isalpha()})
        assert len(names) > 3, path.name
        read = _text.scan(text, names)
        assert sum(len(series) for series in read.values()) > 10, path.name
        assert repr(read) == repr(reference_scan(text, names, _text.MAX_LINE_LENGTH)), path.name


def test_a_full_label_memo_keeps_what_it_holds_and_starts_afresh_after_as_many_misses() -> None:
    memo = _text._LabelMemo(capacity=2, longest=256)
    for raw in ('a="1"', 'a="2"', 'a="3"'):
        assert memo.labels(raw, {}) == {"a": raw[3]}
    assert set(memo._parsed) == {'a="1"', 'a="2"'}, "full: the third is parsed, not kept"
    memo.labels('a="4"', {})
    assert set(memo._parsed) == {'a="1"', 'a="2"'}
    memo.labels('a="5"', {})  # the third miss while full: start afresh
    assert memo._parsed == {}
    memo.labels('a="5"', {})
    assert set(memo._parsed) == {'a="5"'}
    assert memo.labels("x" * 300 + '="1"', {}) == {"x" * 300: "1"}
    assert "x" * 300 + '="1"' not in memo._parsed, "long label sets are never kept"


def test_a_label_set_that_recurs_in_one_body_is_parsed_once_even_with_the_memo_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    memo = _text._LabelMemo(capacity=0, longest=256)
    parsed: list[str] = []
    parse = _text._labels_of
    monkeypatch.setattr(_text, "_labels_of", lambda raw: parsed.append(raw) or parse(raw))
    body: dict[str, tuple[tuple[str, str], ...]] = {}
    first, second = memo.labels('e="0",m="x"', body), memo.labels('e="0",m="x"', body)
    assert first == second == {"e": "0", "m": "x"} and first is not second
    assert parsed == ['e="0",m="x"']
