"""Render every dashboard as the JSON we commit, one file per dashboard named by its ``uid``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dashboards import cost, deployment, fleet, gpu, server
from dashboards.grafana import Json

DASHBOARDS_DIR = Path(__file__).parent
BUILDERS: tuple[Callable[[], Json], ...] = (fleet.build, server.build, gpu.build, cost.build, deployment.build)


def all_dashboards() -> list[Json]:
    """Every dashboard's JSON model."""
    return [build() for build in BUILDERS]


def render(board: Json) -> str:
    """Stable JSON text: two-space indents, sorted keys, a final newline.

    Sorted keys are the order jsonnet writes objects in, so the mixin (``mixin/``) renders these
    dashboards to the same bytes; integral floats are written as integers for the same reason
    (jsonnet has one number type).
    """
    return json.dumps(_canonical(board), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def documents() -> dict[str, str]:
    """File name → content of every generated dashboard."""
    return {f"{board['uid']}.json": render(board) for board in all_dashboards()}
