"""Build Grafana dashboard JSON (schema version 39, Grafana 10.4 and newer) from plain Python.

A panel is a plain ``dict`` in Grafana's own JSON model; the helpers here fill in what every panel of
ours shares (the ``${datasource}`` variable, a unit, a legend) and ``dashboard`` lays the panels out
on the 24-column grid. The output is deterministic, so the committed JSON diffs cleanly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]

SCHEMA_VERSION = 39
GRID_WIDTH = 24
TAGS = ("inference-throughput-exporter", "inference", "gpu")
DATASOURCE: Json = {"type": "prometheus", "uid": "${datasource}"}
CURRENCY_UNIT = "currencyUSD"
"""Unit of every cost panel; the exporter's pricing currency is USD unless its config says otherwise."""

# Units: ids from Grafana's unit catalogue only (grafana/dashboard-linter's panel-units-rule rejects
# custom ``count:`` units). ``short`` scales with K/M; the panel title says what is counted.
TOKENS_PER_SECOND = "short"
REQUESTS_PER_SECOND = "reqps"
REQUESTS = "short"
GPUS = "short"
RATIO = "percentunit"
SECONDS = "s"
BYTES = "bytes"
WATTS = "watt"
JOULES = "joule"
CELSIUS = "celsius"
HERTZ = "hertz"
EVENTS = "short"
STATE = "none"

# Label filters built from the dashboard variables.
NODE = 'job=~"$job", instance=~"$instance"'
SERVER = NODE + ', server=~"$server"'
MODEL = SERVER + ', model=~"$model"'
GPU = NODE + ', gpu=~"$gpu"'


@dataclass(frozen=True, slots=True)
class Variable:
    """A query variable: its values are the label ``name`` of the series that ``selector`` selects.

    ``all_value`` is the regex that "All" stands for: ``.+`` for ``job`` and ``instance``, as
    grafana/dashboard-linter's template rules want (every scraped series has both), ``.*`` for the
    others, which also matches series without the label.
    """

    name: str
    selector: str
    all_value: str = ".*"

    @property
    def query(self) -> str:
        return f"label_values({self.selector}, {self.name})"


VARIABLES = {
    "job": Variable("job", "inference_exporter_build_info", ".+"),
    "instance": Variable("instance", 'inference_exporter_build_info{job=~"$job"}', ".+"),
    "server": Variable("server", f"inference_server_up{{{NODE}}}"),
    "model": Variable("model", f"inference_generation_tokens_total{{{SERVER}}}"),
    "gpu": Variable("gpu", f"inference_gpu_info{{{NODE}}}"),
    "deployment": Variable("deployment", f"inference_server_deployment_info{{{NODE}}}"),
}
"""The chain: each variable's selector uses only the variables before it."""


def target(expr: str, legend: str = "", *, instant: bool = False, table: bool = False) -> Json:
    """One Prometheus query of a panel (the panel sets its ``refId``).

    ``instant`` asks for the last value only (bar gauges); ``table`` returns the series' labels as
    columns (tables).
    """
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "instant": instant or table,
        "range": not (instant or table),
        "format": "table" if table else "time_series",
    }


@dataclass
class Panel:
    """A panel before layout: its JSON, minus ``id`` and ``gridPos``, and its size."""

    json: Json
    width: int = 12
    height: int = 8


@dataclass
class Row:
    """A row header that starts a new band of panels."""

    title: str


def _panel(
    kind: str,
    title: str,
    description: str,
    unit: str,
    targets: list[Json],
    *,
    defaults: Json | None = None,
    **extra: Any,
) -> Json:
    for ref, query in zip("ABCDEFGH", targets, strict=False):
        query["refId"] = ref
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit, **(defaults or {})}, "overrides": []},
        **extra,
    }


def timeseries(
    title: str,
    description: str,
    unit: str,
    *targets: Json,
    width: int = 12,
    height: int = 8,
    bars: bool = False,
    **defaults: Any,
) -> Panel:
    """A time series panel with a table legend (mean, max, last); ``defaults`` such as ``min``/``max``."""
    options = {
        "legend": {"displayMode": "table", "placement": "bottom", "showLegend": True, "calcs": ["mean", "max", "last"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    custom = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 10,
        "showPoints": "never",
        "spanNulls": False,
    }
    panel = _panel(
        "timeseries", title, description, unit, list(targets), options=options, defaults={"custom": custom, **defaults}
    )
    return Panel(panel, width, height)


def stat(title: str, description: str, unit: str, query: Json, *, width: int = 3, height: int = 4) -> Panel:
    """A single number (the last value) with a sparkline."""
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "value",
        "graphMode": "area",
        "justifyMode": "auto",
        "orientation": "auto",
        "textMode": "auto",
    }
    return Panel(_panel("stat", title, description, unit, [query], options=options), width, height)


def state_timeline(
    title: str, description: str, query: Json, mappings: list[Json], *, width: int = 12, height: int = 8
) -> Panel:
    """States over time (up/down, active/inactive), colored by value mappings."""
    options = {"showValue": "never", "mergeValues": True, "rowHeight": 0.9, "legend": {"showLegend": False}}
    panel = _panel(
        "state-timeline", title, description, STATE, [query], options=options, defaults={"mappings": mappings}
    )
    return Panel(panel, width, height)


def bargauge(title: str, description: str, unit: str, query: Json, *, width: int = 12, height: int = 8) -> Panel:
    """One bar per series, for values over the dashboard's time range."""
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "orientation": "horizontal",
        "displayMode": "gradient",
        "showUnfilled": True,
    }
    return Panel(_panel("bargauge", title, description, unit, [query], options=options), width, height)


def table(
    title: str, description: str, unit: str, query: Json, hidden: tuple[str, ...], *, width: int = 24, height: int = 8
) -> Panel:
    """The labels of instant series as rows; ``hidden`` columns are left out."""
    organize = {"id": "organize", "options": {"excludeByName": dict.fromkeys(("Time", "__name__", *hidden), True)}}
    panel = _panel("table", title, description, unit, [query], transformations=[organize], options={"showHeader": True})
    return Panel(panel, width, height)


def value_map(*pairs: tuple[str, str, str]) -> list[Json]:
    """Value mappings from ``(value, text, color)``."""
    options = {value: {"text": text, "color": color, "index": i} for i, (value, text, color) in enumerate(pairs)}
    return [{"type": "value", "options": options}]


@dataclass
class Layout:
    """Places panels left to right on the 24-column grid, wrapping, with rows as full-width bands."""

    panels: list[Json] = field(default_factory=list)
    x: int = 0
    y: int = 0
    band: int = 0

    def add(self, item: Panel | Row) -> None:
        if isinstance(item, Row):
            self._newline()
            self._place({"type": "row", "title": item.title, "collapsed": False, "panels": []}, GRID_WIDTH, 1)
            self._newline()
            return
        if self.x + item.width > GRID_WIDTH:
            self._newline()
        self._place(dict(item.json), item.width, item.height)

    def _place(self, panel: Json, width: int, height: int) -> None:
        panel["id"] = len(self.panels) + 1
        panel["gridPos"] = {"h": height, "w": width, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += width
        self.band = max(self.band, height)

    def _newline(self) -> None:
        if self.x:
            self.x, self.y, self.band = 0, self.y + self.band, 0


def _variable(var: Variable) -> Json:
    return {
        "name": var.name,
        "label": var.name,
        "type": "query",
        "datasource": DATASOURCE,
        "query": var.query,
        "refresh": 2,
        "includeAll": True,
        "allValue": var.all_value,
        "multi": True,
        "sort": 1,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "hide": 0,
        "regex": "",
    }


def _templating(names: tuple[str, ...]) -> Json:
    datasource = {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "options": [],
        "hide": 0,
        "refresh": 1,
        "regex": "",
    }
    return {"list": [datasource, *(_variable(VARIABLES[name]) for name in names)]}


def dashboard(uid: str, title: str, description: str, variables: tuple[str, ...], items: list[Panel | Row]) -> Json:
    """A whole dashboard: variables, links to its siblings, and the laid-out panels."""
    layout = Layout()
    for item in items:
        layout.add(item)
    links = [
        {
            "type": "dashboards",
            "title": "Inference dashboards",
            "tags": [TAGS[0]],
            "asDropdown": True,
            "includeVars": True,
            "keepTime": True,
        }
    ]
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": list(TAGS),
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": False,
        "graphTooltip": 1,
        "timezone": "",
        "time": {"from": "now-3h", "to": "now"},
        "refresh": "30s",
        "links": links,
        "annotations": {"list": []},
        "templating": _templating(variables),
        "panels": layout.panels,
    }
