"""Alerting rules about the exporter itself, and guards that keep the other alerts from going blind.

An alert over a metric that no longer exists never fires. So every metric the alerts depend on is
guarded with ``absent()``: when the exporter is up but the metric is gone (a rename, a relabeling
rule that drops it, an exporter that is not scraped), ``InferenceMetricsAbsent`` says which one.
"""

from __future__ import annotations

from rules.alerts import Rule, alert, text
from rules.settings import Settings


def _up(settings: Settings) -> str:
    return f'up{{job="{settings.exporter_job}"}}'


def exporter_down(settings: Settings) -> Rule:
    """Prometheus cannot scrape an exporter."""
    return alert(
        settings,
        "InferenceExporterDown",
        f"{_up(settings)} == 0",
        hold=settings.exporter_down.for_,
        severity="warning",
        summary="Prometheus cannot scrape an inference-throughput-exporter.",
        description=text(
            "Scrapes of {{ $labels.instance }} (job {{ $labels.job }}) have failed for {hold}: every"
            " inference alert for that node is blind.",
            hold=settings.exporter_down.for_,
        ),
    )


def exporter_absent(settings: Settings) -> Rule:
    """No exporter target exists at all: the job is missing or misnamed."""
    return alert(
        settings,
        "InferenceExporterAbsent",
        f"absent({_up(settings)})",
        hold=settings.metrics_absent.for_,
        severity="warning",
        summary="Prometheus has no inference-throughput-exporter target.",
        description=text(
            'No target of job "{job}" has been seen for {hold}: the exporters are not discovered, or the'
            " job is named differently from exporter_job in rules/settings.yml. Every inference alert is blind.",
            job=settings.exporter_job,
            hold=settings.metrics_absent.for_,
        ),
    )


def nvml_down(settings: Settings) -> Rule:
    """The exporter runs but NVML does not answer it."""
    return alert(
        settings,
        "InferenceExporterNvmlDown",
        "inference_nvml_up == 0",
        hold=settings.nvml_down.for_,
        severity="warning",
        summary="The exporter cannot read the GPUs through NVML.",
        description=text(
            "NVML has not answered the exporter {{ $labels.instance }} for {hold}: GPU metrics, per-GPU"
            " attribution, energy per token and the GPU alerts are missing for that node.",
            hold=settings.nvml_down.for_,
        ),
    )


def guarded_metrics(settings: Settings) -> tuple[tuple[str, str], ...]:
    """Each metric the alerts need, with the condition under which it must exist."""
    return (
        ("inference_exporter_build_info", f"{_up(settings)} == 1"),
        ("inference_server_up", "inference_server_poll_duration_seconds"),
        ("inference_generation_tokens_per_second_per_gpu", "inference_server_up == 1"),
        ("inference_generation_tokens_total", "inference_server_up == 1"),
        ("inference_requests_running", "inference_server_up == 1"),
        ("inference_requests_waiting", "inference_server_up == 1"),
        ("inference_server_gpu_info", "inference_server_gpus > 0"),
        ("inference_nvml_up", "inference_nvml_poll_duration_seconds"),
        ("inference_gpu_up", "inference_nvml_up == 1"),
        ("inference_gpu_utilization_ratio", "inference_nvml_up == 1"),
    )


def _absent(metric: str, condition: str) -> str:
    return f'(\n  label_replace(absent({metric}), "metric", "{metric}", "", "")\n  and on() (count({condition}) > 0)\n)'


def metrics_absent(settings: Settings) -> Rule:
    """A metric the alerts depend on is gone although what produces it is up."""
    expr = "\nor\n".join(_absent(metric, condition) for metric, condition in guarded_metrics(settings))
    return alert(
        settings,
        "InferenceMetricsAbsent",
        expr,
        hold=settings.metrics_absent.for_,
        severity="warning",
        summary="A metric that the inference alerts depend on is missing.",
        description=text(
            "No series of {{ $labels.metric }} has existed for {hold} although its source is up: alerts"
            " built on it cannot fire. Was it renamed, or dropped by relabeling?",
            hold=settings.metrics_absent.for_,
        ),
    )


def exporter_alerts(settings: Settings) -> list[Rule]:
    """Alerts about the exporter and the metrics it must serve."""
    return [exporter_down(settings), exporter_absent(settings), nvml_down(settings), metrics_absent(settings)]
