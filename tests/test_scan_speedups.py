"""The fast paths of the line scanner find exactly what the plain regular expressions they replace find."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from exporter.sources.servers import _text

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
