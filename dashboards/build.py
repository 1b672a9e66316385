"""Render every dashboard as the JSON we commit, one file per dashboard named by its ``uid``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from dashboards import cost, fleet, gpu, server
from dashboards.grafana import Json

DASHBOARDS_DIR = Path(__file__).parent
BUILDERS: tuple[Callable[[], Json], ...] = (fleet.build, server.build, gpu.build, cost.build)


def all_dashboards() -> list[Json]:
    """Every dashboard's JSON model."""
    return [build() for build in BUILDERS]


def render(board: Json) -> str:
    """Stable JSON text: two-space indents, keys in the order they were built, a final newline."""
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def documents() -> dict[str, str]:
    """File name → content of every generated dashboard."""
    return {f"{board['uid']}.json": render(board) for board in all_dashboards()}
