"""Write YAML in the one style that both ``python -m rules`` and the mixin's jsonnet write.

The committed rule files must be what the mixin renders, byte for byte (``mixin/lib/manifest.libsonnet``
mirrors this module). So the style is small and fixed rather than a YAML library's choice:

- mapping keys in ``KEY_ORDER`` first (how a rule reads: ``alert``, ``expr``, ``for``, ``labels``,
  ``annotations``), then the others sorted;
- a sequence in a mapping at the mapping's own indent (``- item``);
- a string plain when it is an identifier, a rule name or a duration (``30s``), double-quoted with
  JSON escapes otherwise, and a literal block (``|-``) when it has several lines.
"""

from __future__ import annotations

import json
import re
from typing import Any

KEY_ORDER = (
    "name",
    "interval",
    "rules",
    "record",
    "alert",
    "expr",
    "for",
    "labels",
    "annotations",
    "summary",
    "description",
    "runbook_url",
)
PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/-]*|(?:[0-9]+(?:ms|s|m|h|d|w|y))+")
"""Strings that YAML reads back as the same string when written without quotes (but see ``RESERVED``)."""
RESERVED = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})
"""Plain words that YAML 1.1 reads as booleans or null."""
KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def dump(value: Any) -> str:
    """The YAML text of a mapping, one line per scalar, ending in a newline."""
    if not isinstance(value, dict):
        raise TypeError("the document must be a mapping")
    return "".join(line + "\n" for line in _mapping(value, ""))


def ordered_keys(mapping: dict[str, Any]) -> list[str]:
    """The keys in the order they are written."""
    known = [key for key in KEY_ORDER if key in mapping]
    return known + sorted(key for key in mapping if key not in KEY_ORDER)


def _mapping(mapping: dict[str, Any], pad: str) -> list[str]:
    lines: list[str] = []
    for key in ordered_keys(mapping):
        if not KEY.fullmatch(key):
            raise ValueError(f"key {key!r} is not a plain identifier")
        lines += _entry(f"{pad}{key}:", mapping[key], pad, nested=pad + "  ")
    return lines


def _entry(head: str, value: Any, pad: str, nested: str) -> list[str]:
    """``head`` (``key:`` or ``-``) followed by ``value``; a mapping value continues at ``nested``."""
    if isinstance(value, dict) and value:
        return [head, *_mapping(value, nested)]
    if isinstance(value, list) and value:
        return [head, *_sequence(value, pad)]
    if isinstance(value, str) and "\n" in value:
        return [f"{head} {_block_indicator(value)}", *_block(value, nested)]
    return [f"{head} {_scalar(value)}"]


def _sequence(items: list[Any], pad: str) -> list[str]:
    lines: list[str] = []
    for item in items:
        if isinstance(item, dict) and item:
            first, *rest = _mapping(item, pad + "  ")
            lines += [f"{pad}- {first[len(pad) + 2 :]}", *rest]
        else:
            lines += _entry(f"{pad}-", item, pad + "  ", nested=pad + "  ")
    return lines


def _block_indicator(text: str) -> str:
    if text.startswith((" ", "\n")) or text.endswith("\n\n") or text.rstrip("\n") != text.rstrip():
        raise ValueError(f"cannot write as a literal block: {text!r}")
    return "|" if text.endswith("\n") else "|-"


def _block(text: str, pad: str) -> list[str]:
    return [f"{pad}{line}" if line else "" for line in text.removesuffix("\n").split("\n")]


CONSTANTS: dict[Any, str] = {None: "null", True: "true", False: "false"}


def _scalar(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return CONSTANTS[value]
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, str):
        plain = PLAIN.fullmatch(value) is not None and value.lower() not in RESERVED
        return value if plain else json.dumps(value, ensure_ascii=False)
    if value in ({}, []):
        return json.dumps(value)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _number(value: float) -> str:
    """Integral numbers without a fraction (jsonnet has one number type), others as Python writes them."""
    return str(int(value)) if value == int(value) else repr(value)
