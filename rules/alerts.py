"""Alerting rules about the inference servers, and what every alert module shares.

The rules follow the monitoring-mixin conventions: every alert is named ``Inference...``, carries
``severity`` (critical pages, warning tickets, info informs), holds for a deliberate ``for:``, and
has ``summary``, ``description`` and an absolute ``runbook_url`` that points at its section of
``docs/runbooks.md`` (``rules.links``). GPU alerts live in ``rules.gpu_alerts``, the exporter's own in
``rules.exporter_alerts``; thresholds and windows come from ``rules/settings.yml``.
"""

from __future__ import annotations

import re
from typing import Any

from rules.links import runbook_url
from rules.recording import BASELINE_RATIO, MODEL, RUNNING_BASELINE, SERVER
from rules.settings import Settings

Rule = dict[str, Any]
SEVERITIES = ("critical", "warning", "info")


def text(template: str, **values: object) -> str:
    """Fill ``{name}`` placeholders, leaving Prometheus templates (``{{ $labels.x }}``) alone."""
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), template)


def percent(ratio: float) -> str:
    """``0.5`` as ``50%``."""
    return f"{ratio * 100:g}%"


def alert(
    settings: Settings,
    name: str,
    expr: str,
    *,
    hold: str,
    severity: str,
    summary: str,
    description: str,
) -> Rule:
    """One alerting rule with the labels and annotations every alert carries."""
    assert severity in SEVERITIES, severity
    return {
        "alert": name,
        "expr": expr,
        "for": hold,
        "labels": {"severity": severity},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": runbook_url(settings, name),
        },
    }


def throughput_drop(settings: Settings) -> Rule:
    """Tokens/s per GPU far below its own baseline while demand is there, with every quiet case excluded."""
    drop = settings.throughput_drop
    expr = text(
        "{ratio} < {limit}\n"
        "# ...while demand is there: requests wait, or the batch runs at its usual size\n"
        "and on({model}) (\n"
        "    inference_requests_waiting > 0\n"
        "  or\n"
        "    (inference_requests_running > 0 and inference_requests_running >= {busy} * {running})\n"
        ")\n"
        "# ...with a baseline: the series existed {history} ago (a new server has none)\n"
        "and on({model}) (inference_generation_tokens_per_second_per_gpu offset {history})\n"
        "# ...and not right after a restart: the server was down, or its counters reset\n"
        "unless on({server}) (min_over_time(inference_server_up[{grace}]) == 0)\n"
        "unless on({server}) (resets(inference_generation_tokens_total[{grace}]) > 0)",
        ratio=BASELINE_RATIO,
        limit=drop.ratio,
        model=MODEL,
        server=SERVER,
        busy=drop.busy_running_ratio,
        running=RUNNING_BASELINE,
        history=drop.min_history,
        grace=drop.restart_grace,
    )
    return alert(
        settings,
        "InferenceThroughputDrop",
        expr,
        hold=drop.for_,
        severity="critical",
        summary="Generation throughput per GPU dropped while demand is present.",
        description=text(
            "{{ $labels.server }} ({{ $labels.model }}) on {{ $labels.instance }} generates"
            " {{ $value | humanizePercentage }} of its {window} average tokens/s per GPU (alert below {limit})"
            " while requests are waiting or its batch is as full as usual: capacity, not demand, fell.",
            window=drop.baseline_window,
            limit=percent(drop.ratio),
        ),
    )


def server_down(settings: Settings) -> Rule:
    """The exporter cannot read a server's ``/metrics``."""
    return alert(
        settings,
        "InferenceServerDown",
        "inference_server_up == 0",
        hold=settings.server_down.for_,
        severity="critical",
        summary="An inference server's metrics cannot be read.",
        description=text(
            "The exporter {{ $labels.instance }} has failed to read server {{ $labels.server }} for {hold}:"
            " the server is down, unreachable, or its /metrics is not what the exporter expects.",
            hold=settings.server_down.for_,
        ),
    )


def gpu_idle_while_queued(settings: Settings) -> Rule:
    """Requests wait while every GPU attributed to the server is idle: the server is stuck."""
    idle = settings.gpu_idle_while_queued
    expr = text(
        "sum by ({server}) (inference_requests_waiting) > 0\n"
        "and on({server})\n"
        "max by ({server}) (\n"
        "  inference_gpu_utilization_ratio\n"
        "  * on(job, instance, uuid) group_right()\n"
        "  inference_server_gpu_info\n"
        ") < {limit}",
        server=SERVER,
        limit=idle.max_utilization,
    )
    return alert(
        settings,
        "InferenceGpuIdleWhileQueued",
        expr,
        hold=idle.for_,
        severity="critical",
        summary="Requests are waiting while the server's GPUs are idle.",
        description=text(
            "{{ $value }} requests wait on {{ $labels.server }} at {{ $labels.instance }}, yet none of its GPUs"
            " is above {limit} utilization: the server is not scheduling work.",
            limit=percent(idle.max_utilization),
        ),
    )


def cost_per_request_high(settings: Settings) -> Rule:
    """A request costs more than the configured threshold, at more than a trickle of traffic."""
    cost = settings.cost_per_request_high
    expr = text(
        "inference_cost_per_request > {limit}\n"
        "# below this traffic the cost per request is mostly idle GPUs\n"
        "and on({model}) (inference_requests_per_second >= {min_rps})",
        limit=cost.threshold,
        model=MODEL,
        min_rps=cost.min_requests_per_second,
    )
    return alert(
        settings,
        "InferenceCostPerRequestHigh",
        expr,
        hold=cost.for_,
        severity="info",
        summary="A request costs more than the configured threshold.",
        description=text(
            "A request to {{ $labels.server }} ({{ $labels.model }}) on {{ $labels.instance }} costs"
            ' {{ $value | printf "%.4f" }} in the pricing currency, above the threshold of {limit}.',
            limit=cost.threshold,
        ),
    )


def kv_cache_near_full(settings: Settings) -> Rule:
    """The KV cache stays almost full: requests are preempted or wait for memory."""
    kv = settings.kv_cache_near_full
    return alert(
        settings,
        "InferenceKvCacheNearFull",
        f"inference_kv_cache_usage_ratio > {kv.threshold}",
        hold=kv.for_,
        severity="warning",
        summary="The KV cache is nearly full.",
        description=text(
            "{{ $labels.server }} ({{ $labels.model }}) on {{ $labels.instance }} has used"
            " {{ $value | humanizePercentage }} of its KV cache for {hold}: requests get preempted or queue.",
            hold=kv.for_,
        ),
    )


def server_alerts(settings: Settings) -> list[Rule]:
    """Alerts about the inference servers, other than the throughput drop (which has its own group)."""
    return [
        server_down(settings),
        gpu_idle_while_queued(settings),
        cost_per_request_high(settings),
        kv_cache_near_full(settings),
    ]
