"""The status page's cost section: what the node costs per hour, how much is idle, the price of tokens.

Every figure is one series of ``/metrics`` (``inference_node_cost_per_second``, the servers' cost and
idle cost, ``inference_cost_per_million_tokens`` by phase), shown per hour where it is a cost per
second, and one sentence sums it up: serving, idle and unattributed, which add up to the node's cost.
"""

from __future__ import annotations

from collections.abc import Iterable

from exporter.model import Snapshot
from exporter.serve.status.cards import Card, Figure, make_figure, make_figures, rounded
from exporter.serve.status.figures import (
    NODE_SPECS,
    PRICE_SPECS,
    SERVER_COST_SPECS,
    ModelRow,
    format_number,
    model_rows,
)
from exporter.serve.status.history import History, Point


def cost_points(snapshot: Snapshot) -> Iterable[Point]:
    """The values of the cost section that the history keeps."""
    for node_spec in NODE_SPECS:
        yield Point((node_spec.metric.name, ()), None, rounded(node_spec.get(snapshot)))
    for server in snapshot.servers:
        for server_spec in SERVER_COST_SPECS:
            yield Point((server_spec.metric.name, (server.name,)), server.name, rounded(server_spec.get(server)))
    for row in model_rows(snapshot.servers):
        for price in PRICE_SPECS:
            key = (row.server.name, row.model, *(v for _, v in price.labels))
            yield Point((price.metric.name, key), row.server.name, rounded(price.get(row)))


SPLIT_WORDS = {
    "gpu_time": "serving cost split by the GPU time it measured per phase",
    "token_weight": "serving cost split by token weight (pricing.generation_token_weight)",
}
"""How each ``inference_cost_split_info`` method reads on a server's cost card."""


def cost_cards(snapshot: Snapshot, history: History) -> Iterable[Card]:
    currency = snapshot.currency
    servers = f"{len(snapshot.servers)} server{'s' if len(snapshot.servers) != 1 else ''}"
    gpus = f"{len(snapshot.gpus)} GPU{'s' if len(snapshot.gpus) != 1 else ''}"
    node_note = "" if snapshot.node_cost_per_second is not None else "No GPU reading: the node's cost is unknown."
    node = make_figures(NODE_SPECS, snapshot, {}, currency, history)
    yield Card({}, "This node", f"{gpus} · {servers}", node_note, node)
    rows = model_rows(snapshot.servers)
    for server in snapshot.servers:
        mine = [row for row in rows if row.server is server]
        figures = [*make_figures(SERVER_COST_SPECS, server, {"server": server.name}, currency, history)]
        figures += _pricefigures(mine, currency, history)
        split = SPLIT_WORDS.get(server.cost_split or "", "no GPUs attributed: no cost")
        note = "" if server.sample is not None else "The server is down: no current figures."
        yield Card({"server": server.name}, server.name, split, note, tuple(figures))


def _pricefigures(rows: list[ModelRow], currency: str, history: History) -> list[Figure]:
    """Each model's prompt and generated prices; the model is named in the caption where there are several."""
    figures = []
    for row in rows:
        labels = {"server": row.server.name, "model": row.model}
        for spec in PRICE_SPECS:
            caption = f"{spec.caption} ({row.model or 'unnamed model'})" if len(rows) > 1 else spec.caption
            figures.append(make_figure(spec, row, labels, currency, history, caption=caption))
    return figures


def cost_summary(snapshot: Snapshot) -> str:
    """The node's cost per hour and where it goes, in one sentence."""
    node = snapshot.node_cost_per_second
    if node is None:
        return "The node's cost is unknown: there is no GPU reading (NVML is down or GPU polling is off)."
    up = [s for s in snapshot.servers if s.priced]  # up, or a worker (GPUs of a deployment, never polled)
    idle = sum(s.idle_cost_per_second or 0.0 for s in up)
    serving = sum(s.cost_per_second or 0.0 for s in up) - idle
    unclaimed = snapshot.unattributed_cost_per_second or 0.0
    hour, currency = 3600.0, snapshot.currency
    return (
        f"This node costs {format_number(node * hour)} {currency} per hour: {format_number(serving * hour)} serving, "
        f"{format_number(idle * hour)} idle, {format_number(unclaimed * hour)} on GPUs no server claims."
    )
