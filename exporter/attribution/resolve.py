"""Turn observations into claims on GPUs, and claims into cost shares. Pure functions, no I/O.

A *claim* says a server uses one device: a whole GPU (keyed by its UUID) or a MIG instance (keyed
by its ``MIG-`` UUID), with the GPU memory its processes use there where known. Shares follow one
rule (``derive.memory_shares``): the servers on a device split it by their memory, equally when any
of them is unknown; a MIG instance carries its share of the GPU (its memory over the GPU's). So the
shares of a whole GPU always sum to 1 and its cost is split, never copied to every server.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from exporter import derive
from exporter.model import DeviceOwner, GpuProcess, GpuReading, GpuShare

METHODS = ("config", "processes", "device_files", "kubelet", "none")
_UUID = re.compile(r"^(GPU|MIG)-[0-9A-Za-z-]+")
GPU_RESOURCE_PREFIX = "nvidia.com/"


@dataclass(frozen=True, slots=True)
class Claim:
    """A server's use of one device."""

    key: str
    """GPU UUID, MIG UUID, or ``index:N`` for a configured index NVML does not know (yet)."""
    memory_bytes: float | None = None
    """GPU memory the server's processes use on the device, ``None`` when unknown."""


@dataclass(frozen=True, slots=True)
class Attribution:
    """How a server's devices were found, and which they are."""

    method: str
    """One of ``METHODS``."""
    claims: tuple[Claim, ...] = ()
    note: str = ""
    """Why nothing (or less than expected) was found, for logs and the status page."""

    @property
    def memory_bytes(self) -> float | None:
        """GPU memory the server uses over all its devices, where every claim knows it."""
        values = [c.memory_bytes for c in self.claims]
        if not values or any(v is None for v in values):
            return None
        return sum(v or 0.0 for v in values)


@dataclass(frozen=True, slots=True)
class ContainerDevice:
    """One device the kubelet says a container holds."""

    namespace: str
    pod: str
    container: str
    device: str | int
    """A GPU or MIG UUID, or an NVML index (device plugins configured with index IDs)."""


@dataclass(frozen=True, slots=True)
class Device:
    """Where a claim's key lands: the GPU, the MIG instance, and the instance's share of the GPU."""

    index: int
    uuid: str
    mig_uuid: str = ""
    fraction: float = 1.0


def device_ref(resource: str, device_id: str) -> str | int | None:
    """A kubelet device ID as a GPU reference: UUIDs (``::N`` time-slicing suffixes dropped) or indices."""
    match = _UUID.match(device_id)
    if match:
        return match.group(0)
    if resource.startswith(GPU_RESOURCE_PREFIX) and device_id.isdigit():
        return int(device_id)
    return None


def device_table(reading: GpuReading | None) -> dict[str, Device]:
    """Every device of a reading by key, MIG instances with their share of the GPU's memory."""
    table: dict[str, Device] = {}
    for gpu in reading.gpus if reading is not None else ():
        table[gpu.uuid] = Device(gpu.index, gpu.uuid)
        for mig in gpu.mig_devices:
            total = gpu.memory_total_bytes
            fraction = (mig.memory_total_bytes or 0.0) / total if total else 1.0 / len(gpu.mig_devices)
            table[mig.uuid] = Device(gpu.index, gpu.uuid, mig.uuid, min(max(fraction, 0.0), 1.0))
    return table


def static_claims(refs: Iterable[int | str], reading: GpuReading | None) -> tuple[Claim, ...]:
    """Claims for a configured list of indices and UUIDs, with no memory (so shared GPUs split equally)."""
    by_index = {g.index: g.uuid for g in reading.gpus} if reading is not None else {}
    keys = [by_index.get(ref, f"index:{ref}") if isinstance(ref, int) else ref for ref in refs]
    return tuple(Claim(key) for key in dict.fromkeys(keys))


def by_processes(pids: frozenset[int], reading: GpuReading) -> tuple[Claim, ...]:
    """Claims on every GPU (or MIG instance) where NVML lists one of ``pids``, with their memory."""
    claims = []
    for gpu in sorted(reading.gpus, key=lambda g: g.index):
        places = [(m.uuid, m.processes) for m in gpu.mig_devices] or [(gpu.uuid, gpu.processes)]
        for key, processes in places:
            mine = [p for p in processes or () if p.pid in pids]
            if mine:
                claims.append(Claim(key, _memory(mine)))
    return tuple(claims)


def _memory(processes: list[GpuProcess]) -> float | None:
    if any(p.used_memory_bytes is None for p in processes):
        return None
    return sum(p.used_memory_bytes or 0.0 for p in processes)


def by_minors(minors: frozenset[int], reading: GpuReading) -> tuple[Claim, ...]:
    """Claims on the GPUs whose ``/dev/nvidiaN`` the server's processes hold open (memory unknown)."""
    return tuple(Claim(g.uuid) for g in sorted(reading.gpus, key=lambda g: g.index) if g.minor_number in minors)


def by_kubelet(
    devices: Iterable[ContainerDevice], namespace: str, pod: str, container: str, reading: GpuReading | None
) -> tuple[Claim, ...]:
    """Claims on the devices held by the pods matching ``namespace``/``pod`` (a glob), one container or all."""
    refs = [
        d.device
        for d in devices
        if d.namespace == namespace and fnmatch.fnmatchcase(d.pod, pod) and (not container or d.container == container)
    ]
    return static_claims(refs, reading)


def owners(devices: Iterable[ContainerDevice], reading: GpuReading | None) -> tuple[DeviceOwner, ...]:
    """The pod and container holding each of this node's GPUs and MIG instances, in GPU order."""
    table = device_table(reading)
    by_index = {g.index: g.uuid for g in reading.gpus} if reading is not None else {}
    found: dict[DeviceOwner, tuple[int, str]] = {}
    for d in devices:
        key = by_index.get(d.device, "") if isinstance(d.device, int) else d.device
        place = table.get(key)
        if place is not None:
            owner = DeviceOwner(place.uuid, place.mig_uuid, d.namespace, d.pod, d.container)
            found[owner] = (place.index, place.mig_uuid)
    return tuple(sorted(found, key=lambda o: (*found[o], o.namespace, o.pod, o.container)))


def shares(attributions: Mapping[str, Attribution], reading: GpuReading | None) -> dict[str, tuple[GpuShare, ...]]:
    """Each server's shares of its devices: split by memory where known, equally otherwise."""
    table = device_table(reading)
    weights = derive.memory_shares({s: {c.key: c.memory_bytes for c in a.claims} for s, a in attributions.items()})
    return {
        server: tuple(_share(table.get(c.key) or _unknown(c.key), weights[server][c.key]) for c in a.claims)
        for server, a in attributions.items()
    }


def _share(device: Device, weight: float) -> GpuShare:
    return GpuShare(device.index, device.uuid, weight * device.fraction, device.mig_uuid)


def _unknown(key: str) -> Device:
    """A configured device NVML does not list (not read yet, lost, or a typo): kept, so its price still counts."""
    if key.startswith("index:"):
        return Device(int(key.removeprefix("index:")), "")
    return Device(-1, key)
