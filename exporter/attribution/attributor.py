"""Keep every server's GPU attribution, refresh it in the background, and answer from memory.

Servers with a GPU list in the config are attributed from it at every snapshot. Servers with
``gpus: auto`` are attributed from the kubelet where Kubernetes is enabled and their pod is known
(a ``pod:`` selector, or the exporter's own pod in sidecar mode), else from their local processes.
The refresh methods block (``psutil``, gRPC) and the poller runs them in worker threads on their own
intervals; ``attributions`` and ``owners`` only read what the last refresh left, including negative
answers, so a snapshot never waits on the kubelet or a process scan, and they never log: the loops
call ``note_changes`` after each refresh, which logs what changed. While the kubelet is away, the
last allocations it reported are kept (nothing can be allocated while it is down) and
``inference_kubelet_pod_resources_up`` says 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psutil
import structlog

from exporter.attribution.kubelet import KubeletUnavailable, PodResourcesClient
from exporter.attribution.local import LocalProcesses, ServerProcesses
from exporter.attribution.resolve import (
    Attribution,
    ContainerDevice,
    by_kubelet,
    by_minors,
    by_processes,
    owners,
    static_claims,
)
from exporter.config import Config, ServerConfig
from exporter.config.kubernetes import EXTRA_HINT
from exporter.model import DeviceOwner, GpuReading, SourceStatus

log = structlog.get_logger("exporter.attribution")

NOT_ASKED = SourceStatus(up=False, duration_seconds=0.0, last_success_unix=None, error="not asked yet")
NOT_LOOKED_UP = Attribution("none", (), "not looked up yet")
NO_ANSWER_YET = Attribution("kubelet", (), "the kubelet has not answered yet")


class Attributor:
    """The attribution state of one configuration."""

    def __init__(
        self,
        config: Config,
        *,
        local: LocalProcesses | None = None,
        kubelet: Callable[[str], PodResourcesClient] = PodResourcesClient,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._local_finder = local
        self._kubelet_factory = kubelet
        self._client: PodResourcesClient | None = None
        self._wall = wall
        self._local: dict[str, Attribution] = {}
        self._devices: tuple[ContainerDevice, ...] | None = None
        self.kubelet_status: SourceStatus | None = NOT_ASKED if config.kubernetes.enabled else None
        self._logged: dict[str, tuple[str, tuple[str, ...]]] = {}

    def reconfigure(self, config: Config) -> None:
        """Take a new configuration; answers for servers that stay are kept until the next refresh."""
        if config.kubernetes != self.config.kubernetes:
            self.close()
            self._devices = None
            self.kubelet_status = NOT_ASKED if config.kubernetes.enabled else None
        self.config = config

    def close(self) -> None:
        """Close the kubelet channel."""
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- which route ---------------------------------------------------------------------------

    def _uses_kubelet(self, server: ServerConfig) -> bool:
        kubernetes = self.config.kubernetes
        return server.gpus_auto and kubernetes.enabled and (server.pod is not None or kubernetes.own_pod is not None)

    @property
    def wants_local(self) -> bool:
        """True when some server is attributed from its local processes."""
        return any(s.gpus_auto and not self._uses_kubelet(s) for s in self.config.servers)

    @property
    def wants_kubelet(self) -> bool:
        """True when Kubernetes attribution is enabled."""
        return self.config.kubernetes.enabled

    # -- refresh (blocking: run in a worker thread) ----------------------------------------------

    def refresh_local(self, reading: GpuReading) -> None:
        """Look up local servers' processes again and match them with the processes in ``reading``."""
        servers = [s for s in self.config.servers if s.gpus_auto and not self._uses_kubelet(s)]
        if not servers:
            return
        if self._local_finder is None:
            self._local_finder = LocalProcesses()
        found = self._local_finder.find([s.url for s in servers])
        hint = _namespace_hint(reading)
        self._local = {s.name: self._from_processes(found[s.url], reading, hint) for s in servers}

    def _from_processes(self, found: ServerProcesses, reading: GpuReading, hint: str) -> Attribution:
        claims = by_processes(found.pids, reading)
        if claims:
            return Attribution("processes", claims)
        claims = by_processes(found.family - found.pids, reading)
        if claims:
            return Attribution("processes", claims, "matched through processes beside the listener (same parent)")
        assert self._local_finder is not None
        minors = self._local_finder.open_gpu_minors(found.family | found.pids)
        claims = by_minors(minors, reading)
        if claims:
            return Attribution("device_files", claims, hint)
        note = found.note or "none of the server's processes is on a GPU"
        return Attribution("none", (), f"{note}; {hint}" if hint else note)

    def refresh_kubelet(self) -> None:
        """Ask the kubelet again; on failure keep the last answer and mark the kubelet down."""
        started = time.monotonic()
        try:
            if self._client is None:
                self._client = self._kubelet_factory(self.config.kubernetes.socket)
            devices = self._client.list_devices()
        except (KubeletUnavailable, ImportError) as exc:
            reason = str(exc) if isinstance(exc, KubeletUnavailable) else f"grpc is not installed: {EXTRA_HINT}"
            self._kubelet_changed(False, reason)
            previous = self.kubelet_status or NOT_ASKED
            self.kubelet_status = SourceStatus(False, time.monotonic() - started, previous.last_success_unix, reason)
            return
        self._kubelet_changed(True, None, devices=len(devices))
        self._devices = devices
        self.kubelet_status = SourceStatus(True, time.monotonic() - started, self._wall(), None)

    def kubelet_failed(self, reason: str) -> None:
        """Mark the kubelet down after an unexpected error; the last answer is kept, as when it is away."""
        error = f"internal error: {reason}"
        self._kubelet_changed(False, error)
        previous = self.kubelet_status or NOT_ASKED
        self.kubelet_status = SourceStatus(False, 0.0, previous.last_success_unix, error)

    def _kubelet_changed(self, up: bool, error: str | None, **fields: object) -> None:
        was = self.kubelet_status
        if was is None or was.up != up or was is NOT_ASKED:
            (log.info if up else log.warning)("kubelet_up" if up else "kubelet_down", error=error, **fields)

    # -- answers (cheap: called for every snapshot) ---------------------------------------------

    def attributions(self, reading: GpuReading | None) -> dict[str, Attribution]:
        """Every configured server's attribution, from the config or the last refresh."""
        result = {}
        for server in self.config.servers:
            if not server.gpus_auto:
                result[server.name] = Attribution("config", static_claims(server.gpus, reading))
            elif self._uses_kubelet(server):
                result[server.name] = self._from_kubelet(server, reading)
            else:
                result[server.name] = self._local.get(server.name, NOT_LOOKED_UP)
        return result

    def _from_kubelet(self, server: ServerConfig, reading: GpuReading | None) -> Attribution:
        if self._devices is None:
            return NO_ANSWER_YET
        selector = server.pod
        own = self.config.kubernetes.own_pod
        if selector is not None and selector.namespace:
            namespace, pod = selector.namespace, selector.name
        elif own is not None:
            namespace, pod = own
        else:
            return Attribution("kubelet", (), "the exporter's own pod is unknown: set POD_NAMESPACE and POD_NAME")
        container = selector.container if selector is not None else ""
        claims = by_kubelet(self._devices, namespace, pod, container, reading)
        where = f"{namespace}/{pod}" + (f" container {container}" if container else "")
        return Attribution("kubelet", claims, "" if claims else f"the kubelet lists no GPU held by {where}")

    def owners(self, reading: GpuReading | None) -> tuple[DeviceOwner, ...]:
        """Which pod and container holds each GPU and MIG instance, from the last kubelet answer."""
        return owners(self._devices, reading) if self._devices else ()

    def note_changes(self, result: dict[str, Attribution]) -> None:
        """Log each server whose GPUs were found differently since the last call."""
        for name, attribution in result.items():
            if attribution in (NOT_LOOKED_UP, NO_ANSWER_YET):
                continue
            state = (attribution.method, tuple(c.key for c in attribution.claims))
            if self._logged.get(name) != state:
                self._logged[name] = state
                if attribution.method != "config":
                    log.info(
                        "gpus_attributed", server=name, method=state[0], gpus=list(state[1]), note=attribution.note
                    )


def _namespace_hint(reading: GpuReading) -> str:
    """A hint when NVML lists PIDs this exporter cannot see: it is not in the host's PID namespace."""
    pids = {p.pid for g in reading.gpus for p in (g.processes or ())}
    if pids and not any(psutil.pid_exists(pid) for pid in pids):
        return "NVML lists host PIDs this exporter cannot see (run it in the host PID namespace: hostPID)"
    return ""
