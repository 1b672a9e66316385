"""LMDeploy's ``api_server`` ``/metrics`` (``lmdeploy:`` families; current names and older ones).

Sample of what it reads (one series per data-parallel ``engine``, summed per ``model_name``)::

    lmdeploy:num_requests_running{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"} 4.0
    lmdeploy:gpu_cache_usage_perc{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"} 0.31
    lmdeploy:generation_tokens_total{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"} 48213.0
    lmdeploy:request_success_total{engine="0",finished_reason="ResponseType.FINISH",...} 96.0

The token counters move every engine iteration, like vLLM's, so short-window rates are honest.
``lmdeploy:request_success_total`` counts every finished request by ``finished_reason``. The older
metrics (a ``Metrics`` class in ``lmdeploy/serve``) have no token counters and no model label; they count
``lmdeploy:request_success_total`` and ``lmdeploy:request_failure_total`` separately (added up here)
and name their histograms ``first_token_latency_seconds`` and ``duration_queue_seconds``.
The inter-token latency comes from ``lmdeploy:iter_token_latency`` (no unit suffix upstream), else
from the per-request ``time_per_output_token_seconds``.
"""

from __future__ import annotations

from exporter.model import TokenCounting
from exporter.sources.servers._families import Table, table_adapter

PREFIX = "lmdeploy:"
TABLE = Table(
    prefix=PREFIX,
    model_label="model_name",
    counters={
        "prompt_tokens": (("prompt_tokens_total",),),
        "generation_tokens": (("generation_tokens_total",),),
        "requests_finished": (("request_success_total", "request_failure_total"),),
    },
    gauges={"requests_running": ("num_requests_running",), "requests_waiting": ("num_requests_waiting",)},
    ratios={"kv_cache_usage_ratio": ("gpu_cache_usage_perc",)},
    histograms={
        "time_to_first_token": ("time_to_first_token_seconds", "first_token_latency_seconds"),
        "inter_token_latency": ("iter_token_latency", "time_per_output_token_seconds"),
        "e2e_request_latency": ("e2e_request_latency_seconds",),
        "request_queue_time": ("request_queue_time_seconds", "duration_queue_seconds"),
    },
)


ADAPTER = table_adapter(
    kind="lmdeploy",
    description="LMDeploy api_server (lmdeploy: families)",
    table=TABLE,
    counting=TokenCounting.INCREMENTAL,
    example="lmdeploy:generation_tokens_total",
)
