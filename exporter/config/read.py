"""The machinery that reads untrusted YAML data: every problem collected with its path, never a traceback.

``Reader`` walks the data and records ``path: problem`` strings; the converters raise ``ValueError``
with a message that reads after the path (``servers[1].url: must be an http(s) URL``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import yaml

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists every reason, each with its path."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(f"  {p}" for p in problems))


def load_yaml(text: str, source: str) -> Any:
    """Parse untrusted YAML text; raise ``ConfigError`` with the line and column of a syntax error.

    The one YAML loader of the configuration, the web config and the rule settings.
    """
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"invalid YAML: {_yaml_reason(exc)}"], source) from None


def read_text_file(path: str, source: str) -> str:
    """A UTF-8 file's text; raise ``ConfigError`` saying why it cannot be read."""
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([f"cannot read the file: {reason}"], source) from None


def _yaml_reason(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else str(problem)


def parse_duration(text: str) -> float:
    """Parse ``500ms``, ``5s``, ``1m``, ``1h`` or ``1m30s`` into seconds; raise ``ValueError`` otherwise."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError("must be a duration such as 500ms, 5s or 1m")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


class Reader:
    """Walks untrusted YAML data, collecting problems with their paths instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def mapping(self, value: Any, path: str, allowed: set[str] | None) -> dict[str, Any]:
        """``value`` as a mapping (``{}`` for none); a key outside ``allowed`` is a problem (``None``: any key)."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(path, "must be a mapping")
            return {}
        for key in value:
            if allowed is not None and key not in allowed:
                self.fail(join(path, str(key)), f"unknown key (expected one of: {', '.join(sorted(allowed))})")
        return value

    def read(self, data: Mapping[str, Any], path: str, key: str, default: Any, convert: Callable[[Any], Any]) -> Any:
        if key not in data:
            return default
        try:
            return convert(data[key])
        except (TypeError, ValueError) as exc:
            self.fail(join(path, key), str(exc))
            return default


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def duration(value: Any) -> float:
    if not isinstance(value, str):
        raise ValueError("must be a duration such as 500ms, 5s or 1m")
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return seconds


def non_negative(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("must be a number")
    if value < 0:
        raise ValueError("must not be negative")
    return float(value)


def positive_number(value: Any) -> float:
    """A finite number above zero (YAML reads ``989.4e12`` as a string, so such text is accepted too)."""
    number = _number(value)
    if number <= 0:
        raise ValueError("must be above zero")
    return number


def unit_interval(value: Any) -> float:
    """A number from 0 to 1."""
    number = non_negative(value)
    if number > 1:
        raise ValueError("must be from 0 to 1")
    return number


def _number(value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError("must be a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("must be a number")
    return float(value)


def positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("must be a whole number above zero")
    return value


def flag(value: Any) -> bool:
    """A YAML boolean."""
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def plain_text(value: Any) -> str:
    """A string, possibly empty."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def url(value: Any) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    return str(value)


def currency(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Z]{3}", value):
        raise ValueError("must be a three-letter currency code such as USD")
    return value
