"""Alerting rules about the GPUs: lost devices, XID errors, and clocks held down by faults or heat."""

from __future__ import annotations

from rules.alerts import Rule, alert, percent, text
from rules.settings import Settings

GPU = "job, instance, gpu, uuid"
"""Labels that identify one GPU of one exporter."""


def gpu_lost(settings: Settings) -> Rule:
    """NVML reports a GPU as lost (fallen off the bus, or reset)."""
    return alert(
        settings,
        "InferenceGpuLost",
        "inference_gpu_up == 0",
        hold=settings.gpu_lost.for_,
        severity="critical",
        summary="NVML reports a GPU as lost.",
        description=(
            "GPU {{ $labels.gpu }} ({{ $labels.uuid }}) on {{ $labels.instance }} is lost to the driver:"
            " the servers on it cannot run."
        ),
    )


def _xid_events(matcher: str, window: str) -> str:
    series = f"inference_gpu_xid_errors_total{{xid{matcher}}}"
    return text(
        "increase({series}[{window}]) > 0\n"
        "# a counter that appeared within the window: its first events\n"
        "or ({series} unless {series} offset {window})",
        series=series,
        window=window,
    )


def gpu_xid_errors(settings: Settings) -> list[Rule]:
    """XID events: the listed ones page, every other one is a warning.

    ``for: 0m`` on purpose: an XID is an event, not a state that could clear itself; the counting
    window keeps the alert up for that long after the last event.
    """
    xid = settings.gpu_xid_errors
    critical = "|".join(str(x) for x in xid.critical_xids)
    description = text(
        "GPU {{ $labels.gpu }} ({{ $labels.uuid }}) on {{ $labels.instance }} reported XID {{ $labels.xid }}"
        " in the last {window}.",
        window=xid.window,
    )
    levels = (
        ("critical", "A GPU reported an XID error that needs a reset or repair.", f'=~"{critical}"'),
        ("warning", "A GPU reported an XID error.", f'!~"{critical}"'),
    )
    return [
        alert(
            settings,
            "InferenceGpuXidErrors",
            _xid_events(matcher, xid.window),
            hold="0m",
            severity=severity,
            summary=summary,
            description=description,
        )
        for severity, summary, matcher in levels
    ]


def gpu_throttled(settings: Settings) -> Rule:
    """A clock-event reason that means a fault or heat held the clocks down most of the window."""
    throttled = settings.gpu_throttled
    reasons = "|".join(throttled.reasons)
    return alert(
        settings,
        "InferenceGpuThrottled",
        text(
            'avg_over_time(inference_gpu_clock_event_active{reason=~"{reasons}"}[{window}]) > {limit}',
            reasons=reasons,
            window=throttled.window,
            limit=throttled.min_active_ratio,
        ),
        hold=throttled.for_,
        severity="warning",
        summary="A GPU's clocks are held down by a hardware fault or by heat.",
        description=text(
            "GPU {{ $labels.gpu }} ({{ $labels.uuid }}) on {{ $labels.instance }} was slowed by {{ $labels.reason }}"
            " {{ $value | humanizePercentage }} of the last {window} (alert above {limit}).",
            window=throttled.window,
            limit=percent(throttled.min_active_ratio),
        ),
    )


def gpu_alerts(settings: Settings) -> list[Rule]:
    """Alerts about the GPUs."""
    return [gpu_lost(settings), *gpu_xid_errors(settings), gpu_throttled(settings)]
