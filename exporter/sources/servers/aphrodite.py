"""Aphrodite Engine's ``/metrics`` (a vLLM fork): vLLM V1's families under ``aphrodite:``, read with vLLM's table.

Sample of what it reads (per ``model_name``, summed over ``engine``)::

    aphrodite:generation_tokens_total{engine="0",model_name="NousResearch/Meta-Llama-3.1-8B-Instruct"} 333.0
    aphrodite:request_success_total{engine="0",finished_reason="length",model_name="..."} 2.0
    aphrodite:kv_cache_usage_perc{engine="0",model_name="NousResearch/Meta-Llama-3.1-8B-Instruct"} 0.0

By default its counters move every engine step, as vLLM's do (incremental). With
``APHRODITE_REQUEST_LEVEL_METRICS=1`` Aphrodite counts a request's tokens only when it finishes
and feeds no per-token histograms; the body does not say which mode runs, so keep ``rate_window``
above the longest requests if you set it. No other server uses the ``aphrodite:`` prefix, so it
is enough to recognize the body.
"""

from __future__ import annotations

from exporter.model import TokenCounting
from exporter.sources.servers import vllm
from exporter.sources.servers._families import table_adapter

PREFIX = "aphrodite:"

ADAPTER = table_adapter(
    kind="aphrodite",
    description="Aphrodite Engine (a vLLM fork: vLLM's families under aphrodite:)",
    table=vllm.table(PREFIX),
    counting=TokenCounting.INCREMENTAL,
    example="aphrodite:generation_tokens_total",
)
