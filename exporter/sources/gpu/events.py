"""Watch XID errors in a background thread: ``inference_gpu_xid_errors_total{gpu, uuid, xid}``.

Part of the GPU source. NVML queues critical XID events on an event set; one daemon thread waits on
it (``nvmlEventSetWait_v2`` with a short timeout, so it stops promptly) and counts every event by
GPU and XID code. A count only ever grows while the exporter runs, so a repeated XID is never lost
between scrapes and nothing needs resetting. GPUs are registered when NVML starts and again when
they appear later (a GPU that comes back after being lost).
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from typing import Any

from exporter.model import XidCount
from exporter.sources.gpu.device import Nvml, text
from exporter.sources.gpu.nvml import Handle

WAIT_MS = 500
"""How long one wait blocks: the longest ``stop`` waits for the thread."""


class XidWatcher:
    """Counts XID events per (GPU, XID) from a thread it owns."""

    def __init__(self, nvml: Nvml) -> None:
        self._nvml = nvml
        self._set: Any = None
        self._watched: dict[str, int] = {}
        """UUID → index of the GPUs registered on the event set."""
        self._by_handle: dict[int, str] = {}
        """Handle address → UUID, to name the GPU of an event without asking NVML."""
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.unavailable: str | None = None
        """Why XID events cannot be watched at all, ``None`` while they can."""

    def start(self) -> bool:
        """Create the event set and start the thread; ``False`` when NVML has no events here."""
        m = self._nvml.module
        try:
            self._set = m.nvmlEventSetCreate()
        except m.NVMLError as exc:
            self.unavailable = str(exc)
            return False
        self._thread = threading.Thread(target=self._run, name="nvml-xid-events", daemon=True)
        self._thread.start()
        return True

    def watch(self, index: int, uuid: str, handle: Handle) -> None:
        """Register a GPU for XID events, once; GPUs that cannot deliver them are skipped."""
        m = self._nvml.module
        if self._set is None or self._watched.get(uuid) == index:
            return
        with contextlib.suppress(m.NVMLError):  # this GPU cannot report XID events: skipped
            m.nvmlDeviceRegisterEvents(handle, m.nvmlEventTypeXidCriticalError, self._set)
        self._watched[uuid] = index
        with self._lock:
            self._by_handle[_address(handle)] = uuid

    def counts(self) -> tuple[XidCount, ...]:
        """Every (GPU, XID) seen so far with its count, ordered by GPU index and XID."""
        with self._lock:
            items = sorted(self._counts.items(), key=lambda kv: (self._watched.get(kv[0][0], -1), kv[0][1]))
        return tuple(XidCount(self._watched.get(uuid, -1), uuid, xid, float(n)) for (uuid, xid), n in items)

    def stop(self) -> None:
        """Stop the thread and free the event set; call before NVML shuts down."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5 * WAIT_MS / 1000)
        if self._set is not None:
            m = self._nvml.module
            with contextlib.suppress(m.NVMLError):  # NVML already down: nothing left to free
                m.nvmlEventSetFree(self._set)
            self._set = None

    def _run(self) -> None:
        m = self._nvml.module
        while not self._stop.is_set():
            try:
                data = m.nvmlEventSetWait_v2(self._set, WAIT_MS)
            except m.NVMLError_Timeout:
                continue
            except m.NVMLError:  # NVML is shutting down, or a GPU is lost: wait and try again
                self._stop.wait(WAIT_MS / 1000)
                continue
            if data.eventType & m.nvmlEventTypeXidCriticalError:
                self._count(data)

    def _count(self, data: Any) -> None:
        uuid = self._uuid_of(data.device)
        with self._lock:
            key = (uuid, int(data.eventData))
            self._counts[key] = self._counts.get(key, 0) + 1

    def _uuid_of(self, device: Any) -> str:
        with self._lock:
            known = self._by_handle.get(_address(device))
        if known is not None:
            return known
        m = self._nvml.module
        try:
            return text(m.nvmlDeviceGetUUID(device))
        except m.NVMLError:
            return ""


def _address(handle: Handle) -> int:
    try:
        return int(ctypes.cast(handle, ctypes.c_void_p).value or 0)
    except (TypeError, ctypes.ArgumentError):
        return id(handle)
