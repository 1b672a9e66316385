"""Plain, immutable data that flows from the sources through derive to the exposition.

Nothing here does I/O or knows about Prometheus. Units are base units and are stated per field.
Two clocks appear: *monotonic* seconds (``time.monotonic()``, only for differences) and *unix*
seconds (wall clock, only for display and ``..._timestamp_seconds`` metrics).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class TokenCounting(enum.StrEnum):
    """When a server's token counters move."""

    INCREMENTAL = "incremental"
    """Every engine step (vLLM V1, LMDeploy): a short-window rate is honest."""
    AT_COMPLETION = "at_completion"
    """Only when a request finishes (TGI, SGLang, Triton, llama.cpp): a short window is lumpy."""


class FieldKind(enum.StrEnum):
    """How a normalized value behaves, which decides how an adapter combines several series of it."""

    COUNTER = "counter"
    """Cumulative since the server started; summed over engines and ranks."""
    GAUGE = "gauge"
    """Instantaneous; summed over engines and ranks."""
    RATIO = "ratio"
    """Instantaneous, 0..1; the largest over engines and ranks."""
    PER_GPU_COUNTER = "per_gpu_counter"
    """Cumulative since the server started, per GPU of the engine that reports it; averaged over engines
    and data-parallel ranks, each of which reports for its own GPUs (summing would count GPUs twice)."""


SAMPLE_FIELDS: Mapping[str, FieldKind] = {
    "prompt_tokens": FieldKind.COUNTER,
    "generation_tokens": FieldKind.COUNTER,
    "requests_finished": FieldKind.COUNTER,
    "requests_running": FieldKind.GAUGE,
    "requests_waiting": FieldKind.GAUGE,
    "kv_cache_usage_ratio": FieldKind.RATIO,
    "prompt_cached_tokens": FieldKind.COUNTER,
    "recomputed_prompt_tokens": FieldKind.COUNTER,
    "recomputed_generation_tokens": FieldKind.COUNTER,
    "prefill_gpu_seconds": FieldKind.COUNTER,
    "decode_gpu_seconds": FieldKind.COUNTER,
    "flops_per_gpu": FieldKind.PER_GPU_COUNTER,
}
"""The normalized values an adapter reads from a body, by the name of their ``ModelSample`` field.

The one list of them: adapter tables are checked against it when their module loads, and ``inspect``
prints them in this order.
"""

HISTOGRAM_NAMES = (
    "time_to_first_token",
    "inter_token_latency",
    "e2e_request_latency",
    "request_queue_time",
)
"""The normalized latency histograms, all in seconds."""


@dataclass(frozen=True, slots=True)
class Histogram:
    """A cumulative histogram, converted to seconds.

    ``buckets`` pairs each upper bound (seconds, ascending, the last one ``inf``) with the cumulative
    count of observations at or below it.
    """

    buckets: tuple[tuple[float, float], ...]
    count: float
    sum: float


@dataclass(frozen=True, slots=True)
class ModelSample:
    """What one server reports for one model at one moment. ``None`` means "not reported".

    Counters are cumulative since the server started; gauges are instantaneous.
    """

    prompt_tokens: float | None = None
    """Counter: prompt (prefill) tokens processed."""
    generation_tokens: float | None = None
    """Counter: generated (decode) tokens."""
    requests_finished: float | None = None
    """Counter: requests that finished, whatever the reason."""
    requests_running: float | None = None
    """Gauge: requests in the running batch."""
    requests_waiting: float | None = None
    """Gauge: requests queued and not yet scheduled."""
    kv_cache_usage_ratio: float | None = None
    """Gauge, 0..1: share of the KV cache in use."""
    prompt_cached_tokens: float | None = None
    """Counter: prompt tokens served from the prefix cache instead of computed; part of ``prompt_tokens``."""
    recomputed_prompt_tokens: float | None = None
    """Counter: prompt tokens whose KV cache the server dropped to make room (preemption, retraction), so
    they are computed again when the request resumes. Only where the server counts tokens, not events."""
    recomputed_generation_tokens: float | None = None
    """Counter: generated tokens whose KV cache the server dropped (as above); they are prefilled again."""
    prefill_gpu_seconds: float | None = None
    """Counter, seconds: GPU time the server measured executing prefill (extend) forward passes of whole
    batches, on one rank of each data-parallel group. Never a sum of per-request intervals."""
    decode_gpu_seconds: float | None = None
    """Counter, seconds: GPU time the server measured executing decode forward passes of whole batches."""
    flops_per_gpu: float | None = None
    """Counter, FLOPs per GPU: the server's own estimate of the floating-point operations its forward
    passes took (an analytic count from the model's shapes and each step's tokens, not a measurement)."""
    generation_tokens_in_flight: float | None = None
    """Gauge: tokens generated so far by requests that have not finished yet (llama.cpp ``/slots``).

    For servers that count at completion, this plus ``generation_tokens`` is a counter that moves live.
    """
    histograms: Mapping[str, Histogram] = field(default_factory=dict)
    """Latency histograms by normalized name (see ``HISTOGRAM_NAMES``), in seconds."""


@dataclass(frozen=True, slots=True)
class ServerSample:
    """One parsed ``/metrics`` body of an inference server."""

    kind: str
    """The adapter that parsed it (``vllm``, ``tgi``, ...)."""
    models: Mapping[str, ModelSample]
    """Per model name. A server without model labels reports one model named by config or ``""``."""
    token_counting: TokenCounting
    version: str = ""
    """The server's version where its body says it, else ``""``."""
    process_start_time_seconds: float | None = None
    """Unix seconds at which the server process started, where it says so; a change means a restart."""


CLOCK_EVENT_REASONS = (
    "gpu_idle",
    "applications_clocks_setting",
    "sw_power_cap",
    "hw_slowdown",
    "sync_boost",
    "sw_thermal_slowdown",
    "hw_thermal_slowdown",
    "hw_power_brake_slowdown",
    "display_clock_setting",
)
"""Why a GPU's clocks are held below their maximum (NVML clock event reasons), in NVML's bit order."""


@dataclass(frozen=True, slots=True)
class GpuProcess:
    """A compute process on a GPU."""

    pid: int
    """As NVML reports it: a PID of the host's PID namespace."""
    used_memory_bytes: float | None
    gpu_instance: int | None = None
    """The MIG GPU instance the process runs in, ``None`` outside MIG."""


@dataclass(frozen=True, slots=True)
class GpmMetrics:
    """Profiling ratios from NVML GPM (Hopper and newer), each 0..1 over the last fast-loop period."""

    sm_activity_ratio: float | None = None
    sm_occupancy_ratio: float | None = None
    tensor_activity_ratio: float | None = None
    dram_bandwidth_utilization_ratio: float | None = None


@dataclass(frozen=True, slots=True)
class MigDeviceSample:
    """One MIG instance of a GPU: its own entity, never a copy of its parent's values."""

    uuid: str
    """``MIG-...``."""
    gpu_instance: int
    compute_instance: int
    profile: str
    """NVML's profile name, such as ``1g.10gb``."""
    memory_used_bytes: float | None = None
    memory_total_bytes: float | None = None
    sm_activity_ratio: float | None = None
    """0..1 from GPM where the GPU has it (opt-in), else ``None``."""
    processes: tuple[GpuProcess, ...] | None = None


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One GPU (or MIG instance) read through NVML at one moment. ``None`` means "not supported"."""

    index: int
    """NVML index (stable for the driver's lifetime)."""
    uuid: str
    name: str
    """Product name, as NVML reports it (``NVIDIA H100 80GB HBM3``)."""
    utilization_ratio: float | None = None
    """0..1: share of the last sample period in which a kernel ran."""
    memory_used_bytes: float | None = None
    memory_total_bytes: float | None = None
    power_watts: float | None = None
    energy_joules: float | None = None
    """Counter: energy since the driver loaded. ``None`` on GPUs or drivers without the counter."""
    temperature_celsius: float | None = None
    processes: tuple[GpuProcess, ...] | None = None
    """Compute processes, where read (a slow-loop value)."""
    sm_clock_hertz: float | None = None
    memory_clock_hertz: float | None = None
    clock_events: frozenset[str] | None = None
    """Active clock event (throttle) reasons, names from ``CLOCK_EVENT_REASONS``; ``None``: unknown."""
    gpm: GpmMetrics | None = None
    """GPM profiling ratios where enabled and supported (a fast-loop value)."""
    power_limit_watts: float | None = None
    """The enforced power limit (a slow-loop value)."""
    ecc_corrected_errors: float | None = None
    """Counter: corrected ECC errors since the driver loaded (a slow-loop value)."""
    ecc_uncorrected_errors: float | None = None
    """Counter: uncorrected ECC errors since the driver loaded (a slow-loop value)."""
    mig_devices: tuple[MigDeviceSample, ...] = ()
    """The GPU's MIG instances when it is in MIG mode (a slow-loop value)."""
    minor_number: int | None = None
    """The N of ``/dev/nvidiaN`` (a slow-loop value)."""


@dataclass(frozen=True, slots=True)
class GpuReading:
    """The node's GPUs as read once by the GPU source."""

    driver_version: str
    gpus: tuple[GpuSample, ...]
    lost: tuple[tuple[int, str], ...] = ()
    """(index, uuid) of GPUs that NVML reports as lost: ``inference_gpu_up 0``, no other series."""


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """How the last poll of one source went."""

    up: bool
    duration_seconds: float
    """Wall time of the last poll (fetch and parse)."""
    last_success_unix: float | None
    """Unix seconds of the last successful poll, ``None`` if it never succeeded."""
    error: str | None = None
    """Why the last poll failed, in one line; ``None`` when it succeeded."""


NOT_POLLED = SourceStatus(up=False, duration_seconds=0.0, last_success_unix=None, error="not polled yet")
"""The status of a source before its first poll."""


@dataclass(frozen=True, slots=True)
class GpuShare:
    """A server's claim on one GPU."""

    index: int
    uuid: str
    weight: float
    """0..1: this server's share of the GPU's cost and energy (all servers on a GPU sum to 1)."""
    mig_uuid: str = ""
    """The MIG instance the claim is on, else ``""``; ``weight`` is then at most the instance's share of the GPU."""


@dataclass(frozen=True, slots=True)
class ModelRates:
    """Values derived for one server and model over the rate window. ``None``: undefined, left out."""

    prompt_tokens_per_second: float | None = None
    generation_tokens_per_second: float | None = None
    requests_per_second: float | None = None
    generation_tokens_per_second_per_gpu: float | None = None
    cost_per_request: float | None = None
    """Currency units per finished request."""
    cost_per_million_generation_tokens: float | None = None
    energy_joules_per_generation_token: float | None = None
    prompt_cost_per_million_tokens: float | None = None
    """Currency units per million prompt tokens: the prompt phase's share of the serving cost over them."""
    generation_cost_per_million_tokens: float | None = None
    """Currency units per million generated tokens: the generation phase's share of the serving cost."""
    prompt_cache_hit_ratio: float | None = None
    """0..1: prompt tokens served from the prefix cache over all prompt tokens."""
    energy_joules_per_token: float | None = None
    """GPU energy per prompt-plus-generated token."""
    flops_per_second_per_gpu: float | None = None
    """The server's estimated FLOPs per second on each of its GPUs."""
    model_flops_utilization_ratio: float | None = None
    """``flops_per_second_per_gpu`` over the dense BF16 tensor peak of the server's GPUs."""


@dataclass(frozen=True, slots=True)
class ServerView:
    """Everything the exposition needs about one configured server."""

    name: str
    status: SourceStatus
    sample: ServerSample | None
    """The last good sample, ``None`` while the server is down (its series are dropped)."""
    gpus: tuple[GpuShare, ...]
    rates: Mapping[str, ModelRates]
    """Per model."""
    cost_per_second: float | None = None
    """Currency units per second that the server's share of its GPUs costs."""
    power_watts: float | None = None
    """The server's share of its GPUs' average power over the rate window."""
    attribution: str = "config"
    """How its GPUs were found: ``config``, ``processes``, ``device_files``, ``kubelet`` or ``none``."""
    gpu_memory_used_bytes: float | None = None
    """GPU memory its processes use, where the GPUs were found from its processes."""
    idle_cost_per_second: float | None = None
    """The part of ``cost_per_second`` spent while the server ran no request and produced no token."""
    cost_split: str | None = None
    """How the serving cost was split between prompt and generation: ``gpu_time`` or ``token_weight``."""
    deployment: str = ""
    """The deployment it belongs to, ``""`` for none."""
    role: str = "engine"
    """Its role there; a ``worker`` (GPUs without ``/metrics``) is never polled and has no ``up``."""

    @property
    def priced(self) -> bool:
        """Whether its cost and power are served: while it is up, and always for a worker."""
        return self.sample is not None or self.role == "worker"


@dataclass(frozen=True, slots=True)
class DeploymentRates:
    """Values derived for one deployment and model over the rate window, each request counted once.

    Requests and tokens come from its frontends when it has one, else from the servers that finish
    requests (``decode`` and plain ``engine`` servers); GPUs and cost from every server in it.
    ``None``: undefined, left out.
    """

    prompt_tokens_per_second: float | None = None
    generation_tokens_per_second: float | None = None
    requests_per_second: float | None = None
    generation_tokens_per_second_per_gpu: float | None = None
    """Over every GPU of the deployment, prefill and workers included."""
    cost_per_request: float | None = None
    prompt_cost_per_million_tokens: float | None = None
    """The deployment's prompt-phase serving cost over its prompt tokens, × 10⁶."""
    generation_cost_per_million_tokens: float | None = None
    """The deployment's generation-phase serving cost over its generated tokens, × 10⁶."""
    energy_joules_per_token: float | None = None
    """Its GPUs' power over its prompt plus generated tokens/s."""


@dataclass(frozen=True, slots=True)
class DeploymentView:
    """A deployment whose servers are all on this node, seen as a whole."""

    name: str
    gpus: int
    """GPUs of all its servers (the sum of their ``inference_server_gpus``)."""
    cost_per_second: float | None
    """What its GPUs cost per second, ``None`` when none of its servers has GPUs attributed."""
    rates: Mapping[str, DeploymentRates]
    """Per model, as the counting servers name it."""
    power_watts: float | None = None
    """Its servers' share of their GPUs' power, ``None`` when none is known."""
    phase_costs: tuple[float, float] | None = None
    """Serving cost per second of the (prompt, generation) phases (``poll.deployments.phase_costs``)."""


@dataclass(frozen=True, slots=True)
class GpuView:
    """Everything the exposition needs about one GPU."""

    sample: GpuSample
    hourly_cost: float
    generation_tokens_per_second: float | None
    """Generation tokens/s attributed to this GPU (its share of each server on it)."""
    energy_joules: float | None = None
    """Energy counter, from NVML or integrated from power where NVML lacks the counter."""


@dataclass(frozen=True, slots=True)
class ConfigReload:
    """How the last reload of the configuration went (SIGHUP or ``POST /-/reload``)."""

    successful: bool
    """False while the last attempt failed; the configuration before it keeps running."""
    last_success_unix: float
    """Unix seconds of the last successful load (the start-up load counts as one)."""


@dataclass(frozen=True, slots=True)
class XidCount:
    """How many XID events of one code one GPU raised since the exporter started (a counter)."""

    index: int
    uuid: str
    xid: int
    count: float


@dataclass(frozen=True, slots=True)
class DeviceOwner:
    """A container that the kubelet says holds a GPU or a MIG instance."""

    uuid: str
    """The GPU's UUID (the parent's, for a MIG instance)."""
    mig_uuid: str
    """The MIG instance's UUID, ``""`` for a whole GPU."""
    namespace: str
    pod: str
    container: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The exporter's whole state at one moment, as served by one scrape."""

    taken_at_unix: float
    servers: tuple[ServerView, ...]
    gpus: tuple[GpuView, ...]
    lost_gpus: tuple[tuple[int, str], ...]
    nvml: SourceStatus | None
    """``None`` when GPU polling is disabled."""
    driver_version: str = ""
    currency: str = "USD"
    ready: bool = False
    """True once every source has been polled at least once."""
    config_reload: ConfigReload | None = None
    """Set by the service: the state of configuration reloads."""
    xid_errors: tuple[XidCount, ...] = ()
    """XID events seen since the exporter started, also for GPUs lost since."""
    gpu_owners: tuple[DeviceOwner, ...] = ()
    """Which pod and container holds which GPU or MIG instance (from the kubelet)."""
    kubelet: SourceStatus | None = None
    """The kubelet pod-resources API; ``None`` when Kubernetes attribution is off."""
    missed_polls: int = 0
    """Counter: polls skipped since the start because the one before overran its interval."""
    deployments: tuple[DeploymentView, ...] = ()
    """Deployments whose servers are all on this node (not ``spans_nodes``)."""
    loop_errors: tuple[tuple[str, int], ...] = ()
    """Counter per loop (``servers``, ``gpu_fast``, ...): iterations that failed and were survived."""
    node_cost_per_second: float | None = None
    """What every GPU read on this node costs per second (prices, and electricity where priced and known),
    with the default price for GPUs a server claims that NVML did not read; ``None`` without a GPU reading."""
    unattributed_cost_per_second: float | None = None
    """The part of ``node_cost_per_second`` of GPUs (or parts of them) that no server that is up claims."""
    event_loop_lag_seconds: float = 0.0
    """Set by the service: the longest delay of its event loop over the last 30 s (0 until measured)."""


def _check_sample_fields() -> None:
    names = {f.name for f in dataclasses.fields(ModelSample)}
    missing = sorted(set(SAMPLE_FIELDS) - names)
    if missing:
        raise TypeError(f"SAMPLE_FIELDS names values ModelSample lacks: {', '.join(missing)}")


_check_sample_fields()
