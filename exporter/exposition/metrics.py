"""Every metric the exporter serves, defined once: name, type, labels, help, and where it comes from.

These names, types and labels are the project's public API. The metrics table of docs/metrics.md is checked
against this module by a test, so the two cannot drift. Never rename a metric here without a
deprecation period in which both names are served.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricType = Literal["gauge", "counter", "histogram", "info"]

SERVER = ("server",)
SERVER_MODEL = ("server", "model")
GPU = ("gpu", "uuid")


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric family."""

    name: str
    """Full name as served in the text format (counters end in ``_total``, info metrics in ``_info``)."""
    type: MetricType
    help: str
    labels: tuple[str, ...]
    source: str
    """Where the number comes from, for the metrics table."""


def _m(name: str, type_: MetricType, labels: tuple[str, ...], help_: str, source: str) -> Metric:
    return Metric(name, type_, help_, labels, source)


W = "over rate_window"

# Servers
SERVER_UP = _m(
    "inference_server_up", "gauge", SERVER, "1 if the last poll of the server's /metrics succeeded, else 0.", "exporter"
)
SERVER_INFO = _m(
    "inference_server_info",
    "info",
    ("server", "kind", "version", "token_counting"),
    "The server's kind, version and when it counts tokens (incremental or at_completion).",
    "adapter",
)
SERVER_GPUS = _m(
    "inference_server_gpus", "gauge", SERVER, "Number of GPUs attributed to the server.", "config / attribution"
)
SERVER_GPU_INFO = _m(
    "inference_server_gpu_info",
    "info",
    ("server", "gpu", "uuid"),
    "One series (value 1) per GPU attributed to the server, to join server and GPU series.",
    "config / attribution",
)
SERVER_POLL_DURATION = _m(
    "inference_server_poll_duration_seconds",
    "gauge",
    SERVER,
    "Wall time of the last poll of the server (fetch and parse).",
    "exporter",
)
SERVER_LAST_SUCCESS = _m(
    "inference_server_last_success_timestamp_seconds",
    "gauge",
    SERVER,
    "Unix time of the last successful poll of the server.",
    "exporter",
)
SERVER_COST = _m(
    "inference_server_cost_per_second",
    "gauge",
    SERVER,
    f"Cost per second of the server's share of its GPUs, with electricity if priced, {W}.",
    "derived: pricing × GPUs (+ power × energy price)",
)
SERVER_POWER = _m(
    "inference_server_power_watts",
    "gauge",
    SERVER,
    f"The server's share of its GPUs' average power {W}.",
    "derived: NVML energy counter deltas (or integrated power)",
)

SERVER_IDLE_COST = _m(
    "inference_server_idle_cost_per_second",
    "gauge",
    SERVER,
    f"The part of inference_server_cost_per_second spent while the server ran no request and its token counters "
    f"did not move, from the polls {W}; the rest is serving cost.",
    "derived: cost per second × idle share of the window",
)
COST_SPLIT_INFO = _m(
    "inference_cost_split_info",
    "info",
    ("server", "method"),
    "How the server's serving cost is split between prompt and generation: gpu_time (the GPU time the server "
    "measured per phase for whole batches) or token_weight (pricing.generation_token_weight).",
    "derived",
)

# The node
NODE_COST = _m(
    "inference_node_cost_per_second",
    "gauge",
    (),
    f"Cost per second of every GPU of the node (prices, plus electricity where priced), {W}: the servers' serving "
    "and idle cost plus inference_unattributed_gpu_cost_per_second.",
    "derived: pricing × GPUs (+ power × energy price)",
)
UNATTRIBUTED_COST = _m(
    "inference_unattributed_gpu_cost_per_second",
    "gauge",
    (),
    f"Cost per second of the GPUs, or parts of them, that no server that is up claims, {W}.",
    "derived: each GPU's cost × the share no server claims",
)

# Per server and model: what the server reports
PROMPT_TOKENS = _m(
    "inference_prompt_tokens_total",
    "counter",
    SERVER_MODEL,
    "Prompt (prefill) tokens processed, as the server counts them.",
    "server counter",
)
GENERATION_TOKENS = _m(
    "inference_generation_tokens_total",
    "counter",
    SERVER_MODEL,
    "Generated tokens, as the server counts them.",
    "server counter",
)
REQUESTS_FINISHED = _m(
    "inference_requests_finished_total",
    "counter",
    SERVER_MODEL,
    "Requests finished, whatever the finish reason.",
    "server counter",
)
REQUESTS_RUNNING = _m(
    "inference_requests_running", "gauge", SERVER_MODEL, "Requests in the running batch.", "server gauge"
)
REQUESTS_WAITING = _m(
    "inference_requests_waiting", "gauge", SERVER_MODEL, "Requests queued, not yet scheduled.", "server gauge"
)
KV_CACHE = _m(
    "inference_kv_cache_usage_ratio",
    "gauge",
    SERVER_MODEL,
    "Share of the KV cache in use, 0..1 (largest over engines/ranks).",
    "server gauge",
)

PROMPT_CACHED_TOKENS = _m(
    "inference_prompt_cached_tokens_total",
    "counter",
    SERVER_MODEL,
    "Prompt tokens served from the prefix cache instead of computed (part of inference_prompt_tokens_total).",
    "server counter",
)
RECOMPUTED_TOKENS = _m(
    "inference_recomputed_tokens_total",
    "counter",
    (*SERVER_MODEL, "phase"),
    "Tokens whose KV cache the server dropped to free memory (retraction), to be computed again, by the phase "
    "that first produced them (prompt, generation); only where the server counts them in tokens.",
    "server counter",
)

# Per server and model: derived
PROMPT_TPS = _m(
    "inference_prompt_tokens_per_second",
    "gauge",
    SERVER_MODEL,
    f"Prompt tokens per second {W}.",
    "derived: rate of the prompt token counter",
)
GENERATION_TPS = _m(
    "inference_generation_tokens_per_second",
    "gauge",
    SERVER_MODEL,
    f"Generated tokens per second {W} (live from /slots where the server counts at completion).",
    "derived: rate of the generation token counter",
)
REQUESTS_PS = _m(
    "inference_requests_per_second",
    "gauge",
    SERVER_MODEL,
    f"Finished requests per second {W}.",
    "derived: rate of the finished request counter",
)
GENERATION_TPS_PER_GPU = _m(
    "inference_generation_tokens_per_second_per_gpu",
    "gauge",
    SERVER_MODEL,
    f"Generated tokens per second per GPU of the server {W}.",
    "derived: generation tokens/s ÷ inference_server_gpus",
)
COST_PER_REQUEST = _m(
    "inference_cost_per_request",
    "gauge",
    SERVER_MODEL,
    f"Cost of one finished request {W}, in the pricing currency; absent with no requests.",
    "derived: cost per second × model share ÷ requests/s",
)
COST_PER_MTOK = _m(
    "inference_cost_per_million_generation_tokens",
    "gauge",
    SERVER_MODEL,
    f"Cost of one million generated tokens {W}; absent when nothing was generated.",
    "derived: cost per second × model share ÷ generation tokens/s × 1e6",
)
JOULES_PER_TOKEN = _m(
    "inference_energy_joules_per_generation_token",
    "gauge",
    SERVER_MODEL,
    f"GPU energy per generated token {W}; absent when nothing was generated.",
    "derived: server power ÷ generation tokens/s",
)

COST_PER_MTOK_PHASE = _m(
    "inference_cost_per_million_tokens",
    "gauge",
    (*SERVER_MODEL, "phase"),
    f"Cost of one million prompt or generated tokens {W}: the phase's part of the serving cost (see "
    "inference_cost_split_info) over its tokens; absent when the phase had no tokens.",
    "derived: serving cost × phase share ÷ phase tokens/s × 1e6",
)
PROMPT_CACHE_HIT = _m(
    "inference_prompt_cache_hit_ratio",
    "gauge",
    SERVER_MODEL,
    f"Prompt tokens served from the prefix cache over all prompt tokens {W}, 0..1.",
    "derived: rate of cached prompt tokens ÷ prompt tokens/s",
)
JOULES_PER_ANY_TOKEN = _m(
    "inference_energy_joules_per_token",
    "gauge",
    SERVER_MODEL,
    f"GPU energy per prompt-plus-generated token {W}; absent when no token was processed.",
    "derived: server power × model share ÷ (prompt + generation tokens/s)",
)
FLOPS_PER_GPU = _m(
    "inference_flops_per_second_per_gpu",
    "gauge",
    SERVER_MODEL,
    f"Floating-point operations per second on each of the server's GPUs {W}, from the server's own estimate "
    "(an analytic count from the model's shapes, not a measurement).",
    "derived: rate of the server's estimated FLOPs per GPU counter",
)
MFU = _m(
    "inference_model_flops_utilization_ratio",
    "gauge",
    SERVER_MODEL,
    f"inference_flops_per_second_per_gpu over the dense BF16 tensor peak of the server's GPUs {W}, 0..1 (above 1 "
    "means the estimate or the peak is wrong); absent where a GPU's peak is unknown (gpu.peak_flops).",
    "derived: FLOP/s per GPU ÷ peak by NVML product name",
)

HISTOGRAMS = {
    "time_to_first_token": _m(
        "inference_time_to_first_token_seconds",
        "histogram",
        SERVER_MODEL,
        "Time from request arrival to its first generated token, server's buckets.",
        "server histogram",
    ),
    "inter_token_latency": _m(
        "inference_inter_token_latency_seconds",
        "histogram",
        SERVER_MODEL,
        "Time between consecutive generated tokens, server's buckets.",
        "server histogram",
    ),
    "e2e_request_latency": _m(
        "inference_e2e_request_latency_seconds",
        "histogram",
        SERVER_MODEL,
        "Time from request arrival to its last token, server's buckets.",
        "server histogram",
    ),
    "request_queue_time": _m(
        "inference_request_queue_time_seconds",
        "histogram",
        SERVER_MODEL,
        "Time a request waited in the queue before running, server's buckets.",
        "server histogram",
    ),
}

# GPUs
NVML_UP = _m(
    "inference_nvml_up",
    "gauge",
    (),
    "1 if NVML answered the last GPU poll, else 0 (no library, no driver, or an error).",
    "exporter",
)
NVML_POLL_DURATION = _m(
    "inference_nvml_poll_duration_seconds", "gauge", (), "Wall time of the last GPU poll through NVML.", "exporter"
)
NVML_LAST_SUCCESS = _m(
    "inference_nvml_last_success_timestamp_seconds",
    "gauge",
    (),
    "Unix time of the last successful GPU poll.",
    "exporter",
)
GPU_INFO = _m(
    "inference_gpu_info", "info", ("gpu", "uuid", "name", "driver_version"), "Static facts about each GPU.", "NVML"
)
GPU_UP = _m(
    "inference_gpu_up",
    "gauge",
    GPU,
    "1 if NVML read the GPU, 0 if NVML reports it lost (its other series are then absent).",
    "NVML",
)
GPU_UTILIZATION = _m(
    "inference_gpu_utilization_ratio",
    "gauge",
    GPU,
    "Share of the last sample period in which a kernel ran, 0..1.",
    "NVML utilization rates",
)
GPU_MEMORY_USED = _m("inference_gpu_memory_used_bytes", "gauge", GPU, "GPU memory in use.", "NVML memory info")
GPU_MEMORY_TOTAL = _m("inference_gpu_memory_total_bytes", "gauge", GPU, "GPU memory in total.", "NVML memory info")
GPU_POWER = _m("inference_gpu_power_watts", "gauge", GPU, "Power draw.", "NVML power usage")
GPU_ENERGY = _m(
    "inference_gpu_energy_joules_total",
    "counter",
    GPU,
    "Energy since the driver loaded (or, where NVML lacks the counter, integrated power since the exporter started).",
    "NVML total energy consumption",
)
GPU_TEMPERATURE = _m("inference_gpu_temperature_celsius", "gauge", GPU, "GPU core temperature.", "NVML")
GPU_HOURLY_COST = _m(
    "inference_gpu_hourly_cost",
    "gauge",
    GPU,
    "Configured price of the GPU per hour, in the pricing currency.",
    "config",
)
GPU_GENERATION_TPS = _m(
    "inference_gpu_generation_tokens_per_second",
    "gauge",
    GPU,
    f"Generated tokens per second attributed to the GPU {W}; sums to the servers' totals.",
    "derived: each server's rate split over its GPUs",
)
GPU_SM_CLOCK = _m("inference_gpu_sm_clock_hertz", "gauge", GPU, "Current SM clock.", "NVML clock info")
GPU_MEMORY_CLOCK = _m("inference_gpu_memory_clock_hertz", "gauge", GPU, "Current memory clock.", "NVML clock info")
GPU_CLOCK_EVENT = _m(
    "inference_gpu_clock_event_active",
    "gauge",
    (*GPU, "reason"),
    "1 while NVML reports this reason for holding the clocks below maximum (throttling), else 0.",
    "NVML clock event reasons",
)
GPU_POWER_LIMIT = _m(
    "inference_gpu_power_limit_watts", "gauge", GPU, "Power limit the driver enforces.", "NVML enforced power limit"
)
GPU_ECC_ERRORS = _m(
    "inference_gpu_ecc_errors_total",
    "counter",
    (*GPU, "type"),
    "ECC memory errors since the driver loaded, by type (corrected, uncorrected).",
    "NVML volatile ECC counters",
)
GPU_XID_ERRORS = _m(
    "inference_gpu_xid_errors_total",
    "counter",
    (*GPU, "xid"),
    "XID errors since the exporter started, by XID code; kept for GPUs lost since.",
    "NVML XID events",
)
GPU_SM_ACTIVITY = _m(
    "inference_gpu_sm_activity_ratio",
    "gauge",
    GPU,
    "Share of time the SMs were busy over the last fast-loop period, 0..1 (gpu.gpm: true).",
    "NVML GPM",
)
GPU_SM_OCCUPANCY = _m(
    "inference_gpu_sm_occupancy_ratio",
    "gauge",
    GPU,
    "Resident warps over the SMs' maximum over the last fast-loop period, 0..1 (gpu.gpm: true).",
    "NVML GPM",
)
GPU_TENSOR_ACTIVITY = _m(
    "inference_gpu_tensor_activity_ratio",
    "gauge",
    GPU,
    "Share of time tensor cores were busy over the last fast-loop period, 0..1 (gpu.gpm: true).",
    "NVML GPM",
)
GPU_DRAM_BANDWIDTH = _m(
    "inference_gpu_dram_bandwidth_utilization_ratio",
    "gauge",
    GPU,
    "Memory bandwidth used over its peak over the last fast-loop period, 0..1 (gpu.gpm: true).",
    "NVML GPM",
)

# MIG instances
MIG = (*GPU, "mig_uuid")
MIG_INFO = _m(
    "inference_mig_device_info",
    "info",
    (*MIG, "gpu_instance", "compute_instance", "profile"),
    "One series per MIG instance of a GPU in MIG mode, with its instance ids and profile.",
    "NVML MIG",
)
MIG_MEMORY_USED = _m(
    "inference_mig_device_memory_used_bytes", "gauge", MIG, "Memory in use in the MIG instance.", "NVML MIG"
)
MIG_MEMORY_TOTAL = _m(
    "inference_mig_device_memory_total_bytes", "gauge", MIG, "Memory of the MIG instance.", "NVML MIG"
)
MIG_SM_ACTIVITY = _m(
    "inference_mig_device_sm_activity_ratio",
    "gauge",
    MIG,
    "Share of time the instance's SMs were busy over the last fast-loop period, 0..1 (gpu.gpm: true).",
    "NVML GPM",
)

# Attribution
SERVER_ATTRIBUTION = _m(
    "inference_server_attribution_info",
    "info",
    ("server", "method"),
    "How the server's GPUs were found: config, processes, device_files, kubelet or none.",
    "attribution",
)
SERVER_GPU_SHARE = _m(
    "inference_server_gpu_share_ratio",
    "gauge",
    ("server", *GPU),
    "The server's share of the GPU's cost and energy, 0..1; the shares of a GPU sum to 1.",
    "attribution: split by the GPU memory of each server's processes, else equally",
)
SERVER_GPU_MEMORY = _m(
    "inference_server_gpu_memory_used_bytes",
    "gauge",
    SERVER,
    "GPU memory used by the server's processes, where its GPUs were found from them.",
    "NVML compute processes",
)
GPU_POD_INFO = _m(
    "inference_gpu_pod_info",
    "info",
    (*GPU, "mig_uuid", "namespace", "pod", "container"),
    "The pod and container that hold the GPU (or its MIG instance), one series per holder.",
    "kubelet pod-resources API",
)
KUBELET_UP = _m(
    "inference_kubelet_pod_resources_up",
    "gauge",
    (),
    "1 if the last call to the kubelet's pod-resources API succeeded, else 0 (its last answer is kept).",
    "exporter",
)

# Deployments: servers that serve one model together, each request counted once
DEPLOYMENT = ("deployment",)
DEPLOYMENT_MODEL = ("deployment", "model")
ONCE = "each request counted once: from its frontends, else from its decode and engine servers"
SERVER_DEPLOYMENT_INFO = _m(
    "inference_server_deployment_info",
    "info",
    ("server", "deployment", "role"),
    "One series (value 1) per server in a deployment, with its role (engine, prefill, decode, frontend, worker): "
    "the join key of the fleet deployment rules.",
    "config",
)
DEPLOYMENT_GPUS = _m(
    "inference_deployment_gpus",
    "gauge",
    DEPLOYMENT,
    "GPUs of every server of the deployment (prefill, decode, engines, workers).",
    "config / attribution",
)
DEPLOYMENT_COST = _m(
    "inference_deployment_cost_per_second",
    "gauge",
    DEPLOYMENT,
    f"Cost per second of every GPU of the deployment, with electricity if priced, {W}.",
    "derived: sum of its servers' cost per second",
)
DEPLOYMENT_GENERATION_TPS = _m(
    "inference_deployment_generation_tokens_per_second",
    "gauge",
    DEPLOYMENT_MODEL,
    f"Generated tokens/s of the deployment {W}, {ONCE}.",
    "derived: counting servers' rates",
)
DEPLOYMENT_PROMPT_TPS = _m(
    "inference_deployment_prompt_tokens_per_second",
    "gauge",
    DEPLOYMENT_MODEL,
    f"Prompt tokens/s of the deployment {W}, {ONCE}.",
    "derived: counting servers' rates",
)
DEPLOYMENT_REQUESTS_PS = _m(
    "inference_deployment_requests_per_second",
    "gauge",
    DEPLOYMENT_MODEL,
    f"Finished requests/s of the deployment {W}, {ONCE}.",
    "derived: counting servers' rates",
)
DEPLOYMENT_GENERATION_TPS_PER_GPU = _m(
    "inference_deployment_generation_tokens_per_second_per_gpu",
    "gauge",
    DEPLOYMENT_MODEL,
    f"Generated tokens/s of the deployment over all of its GPUs, prefill and workers included, {W}.",
    "derived: deployment tokens/s ÷ deployment GPUs",
)
DEPLOYMENT_COST_PER_REQUEST = _m(
    "inference_deployment_cost_per_request",
    "gauge",
    DEPLOYMENT_MODEL,
    f"Cost of one finished request over every GPU of the deployment, {W}.",
    "derived: deployment cost × model share ÷ requests/s",
)

DEPLOYMENT_COST_PER_MTOK_PHASE = _m(
    "inference_deployment_cost_per_million_tokens",
    "gauge",
    ("deployment", "model", "phase"),
    f"Cost of one million tokens of the phase (prompt or generation) over every GPU of the deployment, {W}: "
    "the phase's serving cost (prefill servers' for prompt, decode servers', engines' own split) over its tokens.",
    "derived: phase serving cost ÷ the deployment's phase tokens/s × 10⁶",
)
DEPLOYMENT_JOULES_PER_TOKEN = _m(
    "inference_deployment_energy_joules_per_token",
    "gauge",
    DEPLOYMENT_MODEL,
    f"GPU energy per prompt-plus-generated token over every GPU of the deployment, {W}.",
    "derived: deployment power ÷ (prompt + generated tokens/s)",
)

# The exporter itself
PRICING_INFO = _m("inference_pricing_info", "info", ("currency",), "The currency of every cost metric.", "config")
BUILD_INFO = _m(
    "inference_exporter_build_info", "info", ("version", "python_version"), "The exporter's version.", "exporter"
)
MISSED_POLLS = _m(
    "inference_exporter_missed_polls_total",
    "counter",
    (),
    "Polls skipped because the one before overran its interval (any loop: servers, GPUs, kubelet).",
    "exporter",
)
LOOP_ERRORS = _m(
    "inference_exporter_loop_errors_total",
    "counter",
    ("loop",),
    "Loop iterations that failed with an unexpected error and were survived (servers, gpu_fast, gpu_slow, "
    "kubelet, publish); what the loop owns is marked down meanwhile. Any increase is a bug worth reporting.",
    "exporter",
)
EVENT_LOOP_LAG = _m(
    "inference_exporter_event_loop_lag_seconds",
    "gauge",
    (),
    "Longest delay of the exporter's event loop over the last 30 s (a timer checked 4 times a second): about "
    "the longest a scrape could have waited then. Under a millisecond normally; staying high means the exporter "
    "itself is the bottleneck (too many servers per process at this poll interval, or unusually large bodies).",
    "exporter",
)
SNAPSHOT_TIMESTAMP = _m(
    "inference_exporter_snapshot_timestamp_seconds",
    "gauge",
    (),
    "Unix time at which the served values were composed (after each poll); stops moving if polling stalls.",
    "exporter",
)
CONFIG_RELOAD_SUCCESS = _m(
    "inference_config_last_reload_successful",
    "gauge",
    (),
    "1 if the last configuration load (start-up, SIGHUP or POST /-/reload) succeeded, 0 if it failed.",
    "exporter",
)
CONFIG_RELOAD_TIMESTAMP = _m(
    "inference_config_last_reload_success_timestamp_seconds",
    "gauge",
    (),
    "Unix time of the last successful configuration load.",
    "exporter",
)

ALL: tuple[Metric, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Metric)) + tuple(
    HISTOGRAMS.values()
)
