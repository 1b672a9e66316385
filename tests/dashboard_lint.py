"""grafana/dashboard-linter's rules, written as checks over a dashboard's JSON model.

Each check returns the problems it finds (empty when the dashboard follows the rule), named by the
linter's rule, so a failure reads like the linter's report. PromQL is parsed with ``promql-parser``
(a PromQL parser with an AST), as the linter parses it with Prometheus's own parser; Grafana's
range variables are first replaced by distinctive durations, as the linter does, and other
variables stay as they are (``"$job"`` is a valid label value).

The rules (https://github.com/grafana/dashboard-linter, docs/index.md and lint/rule_*.go):
template-datasource, template-job, template-instance, template-label-promql,
template-on-time-change-reload, template-unused, uneditable-dashboard, panel-datasource,
panel-title-description, panel-units, panel-no-targets, target-promql, target-rate-interval,
target-job, target-instance, target-counter-agg, target-histogram.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import promql_parser

Board = dict[str, Any]
Check = Callable[[Board], list[str]]

RANGE_VARIABLES = {"$__rate_interval": "77777s", "$__range": "88888s", "$__interval": "99999s"}
"""Grafana's range variables, as durations PromQL parses and no query of ours uses literally."""
RATE_INTERVAL = timedelta(seconds=77777)
QUERY_PANELS = ("stat", "singlestat", "graph", "table-old", "timeseries", "gauge")
"""The panel types the linter's panel rules look at."""
UNIT_IDS = (
    # Grafana's unit catalogue (packages/grafana-data/src/valueFormats/categories.ts), the part a
    # Prometheus dashboard uses; the linter accepts only catalogue ids, never custom units.
    "none string short percent percentunit humidity dB hex0x hex sci locale bytes decbytes bits decbits "
    "kbytes deckbytes mbytes decmbytes gbytes decgbytes tbytes dectbytes pbytes decpbytes pps binBps Bps "
    "binbps bps watt kwatt megwatt gwatt mwatt watth kwatth joule ev amp volt celsius fahrenheit kelvin "
    "hertz ns µs ms s m h d dtdurationms dtdurations dthms dtdhms clockms clocks cps ops reqps rps wps "
    "iops cpm opm rpm wpm currencyUSD currencyGBP currencyEUR currencyJPY currencyCHF currencyINR "
    "bool bool_yes_no bool_on_off flops mflops gflops tflops pflops eflops"
)
GRAFANA_UNITS = frozenset(UNIT_IDS.split())
"""Unit ids the panel-units rule accepts."""


def panels(board: Board) -> Iterator[dict[str, Any]]:
    """Every panel that is not a row (rows nest their panels only while collapsed)."""
    for panel in board["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def targets(board: Board) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """``(panel, target)`` for every query of every panel."""
    for panel in panels(board):
        for target in panel.get("targets", []):
            yield panel, target


def query_variables(board: Board) -> list[dict[str, Any]]:
    return [v for v in board["templating"]["list"] if v["type"] == "query"]


def parse(expr: str) -> promql_parser.Expr:
    """Parse a dashboard query the way the linter does: range variables replaced by durations."""
    for variable, duration in RANGE_VARIABLES.items():
        expr = expr.replace(variable, duration)
    return promql_parser.parse(expr)


def walk(node: Any, parents: tuple[Any, ...] = ()) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    """Every node of a PromQL AST with its ancestors (nearest last)."""
    yield node, parents
    below = (*parents, node)
    for child in _children(node):
        yield from walk(child, below)


def _children(node: Any) -> list[Any]:
    if isinstance(node, promql_parser.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, promql_parser.AggregateExpr):
        return [node.expr] + ([node.param] if node.param is not None else [])
    if isinstance(node, promql_parser.Call):
        return list(node.args)
    if isinstance(node, promql_parser.MatrixSelector):
        return [node.vector_selector]
    if isinstance(node, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr):
        return [node.expr]
    return []


def _where(board: Board, panel: dict[str, Any], target: dict[str, Any] | None = None) -> str:
    ref = f" / {target.get('refId', '?')}" if target else ""
    return f"{board['uid']} / {panel.get('title', panel.get('id'))}{ref}"


# Dashboard and template rules


def uneditable(board: Board) -> list[str]:
    return [f"uneditable-dashboard: {board['uid']} is editable"] if board.get("editable", True) else []


def template_datasource(board: Board) -> list[str]:
    sources = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    if len(sources) != 1:
        return [f"template-datasource-rule: {board['uid']} has {len(sources)} data source variables, not 1"]
    (source,) = sources
    problems = []
    if source["name"] not in ("datasource", f"{source['query']}_datasource"):
        problems.append(f"template-datasource-rule: {board['uid']}: variable named {source['name']!r}")
    if source.get("label") not in ("Data source", f"{source['query'].title()} data source"):
        problems.append(f"template-datasource-rule: {board['uid']}: variable labelled {source.get('label')!r}")
    if source["query"] != "prometheus":
        problems.append(f"template-datasource-rule: {board['uid']}: data source type {source['query']!r}")
    return problems


def _datasource_uid(value: Any) -> str:
    return str(value.get("uid", "") if isinstance(value, dict) else value or "")


def _required_variable(board: Board, name: str) -> list[str]:
    rule = f"template-{name}-rule: {board['uid']}"
    found = [v for v in board["templating"]["list"] if v["name"] == name]
    if not found:
        return [f"{rule}: no {name} variable"]
    variable = found[0]
    source = _datasource_uid(variable.get("datasource"))
    checks = {
        "uses the data source variable": source in ("$datasource", "${datasource}"),
        "is a query variable": variable["type"] == "query",
        f"is labelled {name!r}": variable.get("label") == name,
        "is multi-select": variable.get("multi") is True,
        "has allValue '.+'": variable.get("allValue") == ".+",
    }
    return [f"{rule}: the {name} variable {what}: no" for what, ok in checks.items() if not ok]


def template_job(board: Board) -> list[str]:
    return _required_variable(board, "job")


def template_instance(board: Board) -> list[str]:
    return _required_variable(board, "instance")


LABEL_VALUES = re.compile(r"label_values\((?P<selector>.+),\s*(?P<label>\w+)\)")


def template_label_promql(board: Board) -> list[str]:
    problems = []
    for variable in query_variables(board):
        match = LABEL_VALUES.fullmatch(variable["query"])
        if match is None:
            problems.append(f"template-label-promql-rule: {board['uid']}: {variable['query']!r} is not label_values")
            continue
        try:
            parse(match["selector"])
        except ValueError as exc:
            problems.append(f"template-label-promql-rule: {board['uid']}: {variable['name']}: {exc}")
    return problems


def template_on_time_change_reload(board: Board) -> list[str]:
    return [
        f"template-on-time-change-reload-rule: {board['uid']}: {v['name']} refresh is {v.get('refresh')}, not 2"
        for v in query_variables(board)
        if v.get("refresh") != 2
    ]


def template_unused(board: Board) -> list[str]:
    exprs = [target.get("expr", "") for _, target in targets(board)]
    unused = []
    for variable in query_variables(board):
        used = re.compile(rf"\$(?:{variable['name']}\b|\{{{variable['name']}(?::[^}}]+)?\}})")
        if not any(used.search(expr) for expr in exprs):
            unused.append(f"template-unused-rule: {board['uid']}: {variable['name']} is used by no panel")
    return unused


# Panel rules


def panel_datasource(board: Board) -> list[str]:
    names = {v["name"] for v in board["templating"]["list"] if v["type"] == "datasource"}
    allowed = {f"${name}" for name in names} | {f"${{{name}}}" for name in names}
    return [
        f"panel-datasource-rule: {_where(board, p)} uses data source {_datasource_uid(p.get('datasource'))!r}"
        for p in panels(board)
        if _datasource_uid(p.get("datasource")) not in allowed
    ]


def panel_title_description(board: Board) -> list[str]:
    return [
        f"panel-title-description-rule: {_where(board, p)} has no title or no description"
        for p in panels(board)
        if not p.get("title") or not p.get("description")
    ]


def _unit(panel: dict[str, Any]) -> str:
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        for prop in override.get("properties", []):
            if prop.get("id") == "unit":
                return str(prop.get("value", ""))
    return str(panel.get("fieldConfig", {}).get("defaults", {}).get("unit", ""))


def panel_units(board: Board) -> list[str]:
    problems = []
    for panel in panels(board):
        if panel["type"] not in QUERY_PANELS or panel.get("fieldConfig", {}).get("defaults", {}).get("mappings"):
            continue
        if _unit(panel) not in GRAFANA_UNITS:
            problems.append(f"panel-units-rule: {_where(board, panel)} has no or an invalid unit: {_unit(panel)!r}")
    return problems


def panel_no_targets(board: Board) -> list[str]:
    return [f"panel-no-targets-rule: {_where(board, p)} has no query" for p in panels(board) if not p.get("targets")]


# Target rules


def target_promql(board: Board) -> list[str]:
    problems = []
    for panel, target in targets(board):
        try:
            parse(target["expr"])
        except ValueError as exc:
            problems.append(f"target-promql-rule: {_where(board, panel, target)}: {exc}")
    return problems


def _each_node(board: Board) -> Iterator[tuple[str, Any, tuple[Any, ...]]]:
    for panel, target in targets(board):
        try:
            tree = parse(target["expr"])
        except ValueError:
            continue  # target-promql-rule reports it
        for node, parents in walk(tree):
            yield _where(board, panel, target), node, parents


def _function(node: Any) -> str:
    return str(node.func.name) if isinstance(node, promql_parser.Call) else ""


def target_rate_interval(board: Board) -> list[str]:
    return [
        f"target-rate-interval-rule: {where}: {_function(parents[-1])}() over {node.range} instead of $__rate_interval"
        for where, node, parents in _each_node(board)
        if isinstance(node, promql_parser.MatrixSelector)
        and parents
        and _function(parents[-1]) in ("rate", "irate")
        and node.range != RATE_INTERVAL
    ]


def _matchers(selector: promql_parser.VectorSelector) -> dict[str, tuple[Any, str]]:
    return {m.name: (m.op, m.value) for m in selector.matchers.matchers}


def _target_matcher(board: Board, label: str) -> list[str]:
    wanted = (promql_parser.MatchOp.Re, f"${label}")
    return [
        f"target-{label}-rule: {where}: {node.name} has no {label}=~\"${label}\" matcher"
        for where, node, _ in _each_node(board)
        if isinstance(node, promql_parser.VectorSelector) and _matchers(node).get(label) != wanted
    ]


def target_job(board: Board) -> list[str]:
    return _target_matcher(board, "job")


def target_instance(board: Board) -> list[str]:
    return _target_matcher(board, "instance")


def target_counter_agg(board: Board) -> list[str]:
    problems = []
    for where, node, parents in _each_node(board):
        if not isinstance(node, promql_parser.VectorSelector) or not (node.name or "").endswith("_total"):
            continue
        ranged = len(parents) >= 2 and isinstance(parents[-1], promql_parser.MatrixSelector)
        if not ranged or _function(parents[-2]) not in ("rate", "irate", "increase"):
            problems.append(f"target-counter-agg-rule: {where}: counter {node.name} is not under rate/irate/increase")
    return problems


def target_histogram(board: Board) -> list[str]:
    return [
        f"target-histogram-rule: {where}: {node.name} is not inside histogram_quantile"
        for where, node, parents in _each_node(board)
        if isinstance(node, promql_parser.VectorSelector)
        and (node.name or "").endswith("_bucket")
        and not any(_function(parent) == "histogram_quantile" for parent in parents)
    ]


RULES: dict[str, Check] = {
    "uneditable-dashboard": uneditable,
    "template-datasource-rule": template_datasource,
    "template-job-rule": template_job,
    "template-instance-rule": template_instance,
    "template-label-promql-rule": template_label_promql,
    "template-on-time-change-reload-rule": template_on_time_change_reload,
    "template-unused-rule": template_unused,
    "panel-datasource-rule": panel_datasource,
    "panel-title-description-rule": panel_title_description,
    "panel-units-rule": panel_units,
    "panel-no-targets-rule": panel_no_targets,
    "target-promql-rule": target_promql,
    "target-rate-interval-rule": target_rate_interval,
    "target-job-rule": target_job,
    "target-instance-rule": target_instance,
    "target-counter-agg-rule": target_counter_agg,
    "target-histogram-rule": target_histogram,
}
