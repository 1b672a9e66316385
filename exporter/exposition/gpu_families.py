"""The GPU families beyond the basics: clocks, clock events, ECC, XID, GPM, MIG, attribution, pods.

Rendered from the snapshot like every family (``families.py`` calls in here). As everywhere, a value
that is ``None`` is left out; a GPU without clock event support gets no ``clock_event_active``
series at all, rather than zeros that would claim "not throttled". Sample::

    inference_gpu_clock_event_active{gpu="0",uuid="GPU-5d8e...",reason="sw_power_cap"} 1.0
    inference_gpu_xid_errors_total{gpu="1",uuid="GPU-77ab...",xid="31"} 3.0
    inference_mig_device_info{gpu="0",uuid="GPU-5d8e...",mig_uuid="MIG-7b75...",gpu_instance="2",...} 1.0
    inference_server_gpu_share_ratio{server="llama",gpu="0",uuid="GPU-5d8e..."} 0.75
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from exporter.exposition import metrics as m
from exporter.exposition.text import Family, Sample
from exporter.model import CLOCK_EVENT_REASONS, GpmMetrics, GpuView, Snapshot


def _gpm(get: Callable[[GpmMetrics], float | None]) -> Callable[[GpuView], float | None]:
    return lambda g: get(g.sample.gpm) if g.sample.gpm is not None else None


_FIELDS: tuple[tuple[m.Metric, Callable[[GpuView], float | None]], ...] = (
    (m.GPU_SM_CLOCK, lambda g: g.sample.sm_clock_hertz),
    (m.GPU_MEMORY_CLOCK, lambda g: g.sample.memory_clock_hertz),
    (m.GPU_POWER_LIMIT, lambda g: g.sample.power_limit_watts),
    (m.GPU_SM_ACTIVITY, _gpm(lambda x: x.sm_activity_ratio)),
    (m.GPU_SM_OCCUPANCY, _gpm(lambda x: x.sm_occupancy_ratio)),
    (m.GPU_TENSOR_ACTIVITY, _gpm(lambda x: x.tensor_activity_ratio)),
    (m.GPU_DRAM_BANDWIDTH, _gpm(lambda x: x.dram_bandwidth_utilization_ratio)),
)


def gpu_key(gpu: GpuView) -> tuple[str, str]:
    """The GPU's label values (``gpu``, ``uuid``), as every per-GPU series carries them."""
    return (str(gpu.sample.index), gpu.sample.uuid)


def gpu_detail_families(snapshot: Snapshot) -> Iterator[Family]:
    """Clocks, clock events, power limit, GPM, ECC, XID, MIG instances, pods and the kubelet."""
    gpus = snapshot.gpus
    for metric, get in _FIELDS:
        yield metric, [(gpu_key(g), v) for g in gpus if (v := get(g)) is not None]
    yield m.GPU_CLOCK_EVENT, list(_clock_events(gpus))
    yield m.GPU_ECC_ERRORS, list(_ecc(gpus))
    yield m.GPU_XID_ERRORS, [((str(x.index), x.uuid, str(x.xid)), x.count) for x in snapshot.xid_errors]
    yield from _mig_families(gpus)
    yield m.GPU_POD_INFO, list(_pods(snapshot))
    if snapshot.kubelet is not None:
        yield m.KUBELET_UP, [((), 1.0 if snapshot.kubelet.up else 0.0)]


def _clock_events(gpus: tuple[GpuView, ...]) -> Iterator[Sample]:
    for gpu in gpus:
        active = gpu.sample.clock_events
        if active is not None:
            for reason in CLOCK_EVENT_REASONS:
                yield (*gpu_key(gpu), reason), 1.0 if reason in active else 0.0


def _ecc(gpus: tuple[GpuView, ...]) -> Iterator[Sample]:
    for gpu in gpus:
        for kind, value in (
            ("corrected", gpu.sample.ecc_corrected_errors),
            ("uncorrected", gpu.sample.ecc_uncorrected_errors),
        ):
            if value is not None:
                yield (*gpu_key(gpu), kind), value


def _mig_families(gpus: tuple[GpuView, ...]) -> Iterator[Family]:
    migs = [(g, mig) for g in gpus for mig in g.sample.mig_devices]
    yield (
        m.MIG_INFO,
        [((*gpu_key(g), d.uuid, str(d.gpu_instance), str(d.compute_instance), d.profile), 1.0) for g, d in migs],
    )
    for metric, values in (
        (m.MIG_MEMORY_USED, [d.memory_used_bytes for _, d in migs]),
        (m.MIG_MEMORY_TOTAL, [d.memory_total_bytes for _, d in migs]),
        (m.MIG_SM_ACTIVITY, [d.sm_activity_ratio for _, d in migs]),
    ):
        yield metric, [((*gpu_key(g), d.uuid), v) for (g, d), v in zip(migs, values, strict=True) if v is not None]


def _pods(snapshot: Snapshot) -> Iterator[Sample]:
    index = {g.sample.uuid: str(g.sample.index) for g in snapshot.gpus}
    for owner in snapshot.gpu_owners:
        if owner.uuid in index:
            yield (index[owner.uuid], owner.uuid, owner.mig_uuid, owner.namespace, owner.pod, owner.container), 1.0


def attribution_families(snapshot: Snapshot) -> Iterator[Family]:
    """How each server that is up was attributed, its share of each GPU, and its GPU memory."""
    up = [s for s in snapshot.servers if s.sample is not None]
    yield m.SERVER_ATTRIBUTION, [((s.name, s.attribution), 1.0) for s in up]
    shares: dict[tuple[str, str, str], float] = {}
    for server in up:
        for share in server.gpus:
            key = (server.name, str(share.index), share.uuid)
            shares[key] = shares.get(key, 0.0) + share.weight
    yield m.SERVER_GPU_SHARE, list(shares.items())
    yield (
        m.SERVER_GPU_MEMORY,
        [((s.name,), s.gpu_memory_used_bytes) for s in up if s.gpu_memory_used_bytes is not None],
    )
