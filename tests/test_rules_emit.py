"""The YAML style of the generated rule files: what it writes reads back as the same data."""

from __future__ import annotations

import pytest
import yaml

from rules import emit


def test_a_rule_reads_in_the_order_alert_expr_for_labels_annotations() -> None:
    rule = {"annotations": {"runbook_url": "https://x.example/r#a", "summary": "S."}, "for": "5m", "expr": "up == 0"}
    text = emit.dump({"groups": [{"rules": [{**rule, "alert": "A"}], "name": "g"}]})
    assert text == (
        "groups:\n"
        "- name: g\n"
        "  rules:\n"
        "  - alert: A\n"
        '    expr: "up == 0"\n'
        "    for: 5m\n"
        "    annotations:\n"
        "      summary: S.\n"
        '      runbook_url: "https://x.example/r#a"\n'
    )


def test_multi_line_strings_are_literal_blocks_indented_under_their_key() -> None:
    text = emit.dump({"a": {"expr": "sum(\n  x\n)"}, "b": "end\n"})
    assert text == "a:\n  expr: |-\n    sum(\n      x\n    )\nb: |\n  end\n"
    assert yaml.safe_load(text) == {"a": {"expr": "sum(\n  x\n)"}, "b": "end\n"}


@pytest.mark.parametrize(
    "value",
    ["on", "Yes", "null", "30s", "1h30m", "0.5", "10", ":a:b", "a: b", "#x", "{{ $value }}", "", "é", "a\tb", '"q"'],
)
def test_every_string_reads_back_as_itself(value: str) -> None:
    assert yaml.safe_load(emit.dump({"k": value, "l": [value]})) == {"k": value, "l": [value]}


def test_words_and_numbers_that_yaml_would_retype_are_quoted() -> None:
    text = emit.dump({"a": "on", "b": "10", "c": "10m", "d": "model:x:sum"})
    assert text == 'a: "on"\nb: "10"\nc: 10m\nd: model:x:sum\n'


def test_other_scalars_and_empty_collections() -> None:
    data = {"a": 1, "b": 0.25, "c": 2.0, "d": True, "e": None, "f": [], "g": {}}
    text = emit.dump(data)
    assert text == "a: 1\nb: 0.25\nc: 2\nd: true\ne: null\nf: []\ng: {}\n"
    assert yaml.safe_load(text) == {**data, "c": 2}


def test_what_the_style_cannot_write_is_refused() -> None:
    with pytest.raises(ValueError, match="literal block"):
        emit.dump({"a": " leading\nspace"})
    with pytest.raises(ValueError, match="not a plain identifier"):
        emit.dump({"a b": 1})
    with pytest.raises(TypeError):
        emit.dump({"a": object()})
