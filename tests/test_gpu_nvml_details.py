"""The GPU module's deeper reads on the fake NVML: fast and slow values, GPM, MIG, XID events, fallbacks."""

from __future__ import annotations

import threading
import time

import pynvml
import pytest

from exporter.fakes.nvml import FakeProcess, h100_node, mig_node, old_driver_node
from exporter.model import CLOCK_EVENT_REASONS
from exporter.sources.gpu import GpuSource
from exporter.sources.gpu.device import decode_clock_events
from tests.helpers import Clock, wait_for


def started(source: GpuSource) -> GpuSource:
    source.start()
    return source


def raises(code: int):  # type: ignore[no-untyped-def]
    def call(*_args: object, **_kwargs: object) -> None:
        raise pynvml.NVMLError(code)

    return call


def test_every_clock_event_bit_decodes_to_its_reason_name() -> None:
    bits = [
        pynvml.nvmlClocksEventReasonGpuIdle,
        pynvml.nvmlClocksEventReasonApplicationsClocksSetting,
        pynvml.nvmlClocksEventReasonSwPowerCap,
        pynvml.nvmlClocksEventReasonHwSlowdown,
        pynvml.nvmlClocksEventReasonSyncBoost,
        pynvml.nvmlClocksEventReasonSwThermalSlowdown,
        pynvml.nvmlClocksEventReasonHwThermalSlowdown,
        pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown,
        pynvml.nvmlClocksEventReasonDisplayClockSetting,
    ]
    for bit, name in zip(bits, CLOCK_EVENT_REASONS, strict=True):
        assert decode_clock_events(pynvml, bit) == {name}
    assert decode_clock_events(pynvml, 0) == frozenset()
    assert decode_clock_events(pynvml, sum(bits) | 0x200) == set(CLOCK_EVENT_REASONS)  # unknown bits ignored


def test_the_fast_read_carries_the_last_slow_values_until_the_next_slow_read() -> None:
    clock = Clock()
    nvml = h100_node(clock, count=1)
    source = started(GpuSource(nvml=nvml))
    assert source.read_fast().gpus[0].processes is None
    nvml.gpus[0].processes = [FakeProcess(1234, 3 * 1024**3)]
    nvml.gpus[0].ecc_corrected = 7
    source.read_slow()
    nvml.gpus[0].processes = []
    (gpu,) = source.read_fast().gpus
    assert [(p.pid, p.used_memory_bytes) for p in gpu.processes or ()] == [(1234, 3 * 1024**3)]
    assert gpu.ecc_corrected_errors == 7.0
    assert gpu.power_limit_watts == 700.0
    assert gpu.minor_number == 0


def test_gpm_reports_nothing_on_the_first_read_then_the_ratios_since_the_last() -> None:
    clock = Clock()
    source = started(GpuSource(nvml=h100_node(clock, count=1, load=lambda t: 0.2 if t < 1001 else 0.6), gpm=True))
    source.read_slow()
    assert source.read_fast().gpus[0].gpm is None
    clock.advance(1.0)
    gpm = source.read_fast().gpus[0].gpm
    assert gpm is not None
    assert gpm.sm_activity_ratio == pytest.approx((0.2 + 4 * 0.2 + 0.6) / 6)  # the load between the two samples
    assert gpm.sm_occupancy_ratio is not None and gpm.dram_bandwidth_utilization_ratio is not None


def test_a_gpu_without_gpm_is_asked_once_and_then_left_alone() -> None:
    clock = Clock()
    nvml = old_driver_node(clock, count=1)
    asked = []
    original = nvml.nvmlGpmQueryDeviceSupport

    def counting(handle: object) -> object:
        asked.append(handle)
        return original(handle)

    nvml.nvmlGpmQueryDeviceSupport = counting  # type: ignore[method-assign]
    source = started(GpuSource(nvml=nvml, gpm=True))
    for _ in range(4):
        source.read()
    assert len(asked) == 1
    assert source.read_fast().gpus[0].gpm is None


def test_closing_frees_every_gpm_sample_and_the_event_set() -> None:
    clock = Clock()
    nvml = mig_node(clock)
    source = started(GpuSource(nvml=nvml, gpm=True, xid_events=True))
    for _ in range(3):
        source.read()
        clock.advance(1.0)
    assert nvml._gpm_samples
    source.close()
    assert not nvml._gpm_samples
    assert not nvml._sets
    assert not nvml.initialized


def test_memory_falls_back_to_version_1_where_the_driver_lacks_version_2(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    nvml = h100_node(clock, count=1)
    nvml.gpus[0].memory_used = 5 * 1024**3
    original = nvml.nvmlDeviceGetMemoryInfo

    def v1_only(handle: object, version: int | None = None) -> object:
        if version:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        return original(handle)

    monkeypatch.setattr(nvml, "nvmlDeviceGetMemoryInfo", v1_only)
    assert started(GpuSource(nvml=nvml)).read().gpus[0].memory_used_bytes == 5 * 1024**3


def test_power_comes_from_the_instant_field_and_falls_back_to_power_usage(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    nvml = h100_node(clock, count=1, load=lambda _t: 0.5)
    source = started(GpuSource(nvml=nvml))
    assert source.read_fast().gpus[0].power_watts == pytest.approx(385.0)
    nvml.gpus[0].has_power_instant = False
    monkeypatch.setattr(nvml, "nvmlDeviceGetPowerUsage", lambda _h: 400_000)
    assert source.read_fast().gpus[0].power_watts == pytest.approx(400.0)


def test_an_old_driver_reports_clock_events_through_the_throttle_reasons_call() -> None:
    clock = Clock()
    nvml = old_driver_node(clock, count=1)
    (gpu,) = started(GpuSource(nvml=nvml)).read().gpus
    assert gpu.clock_events == {"gpu_idle"}
    assert gpu.energy_joules is None


def test_mig_processes_come_from_each_instance_when_the_aggregate_needs_privileges() -> None:
    clock = Clock()
    nvml = mig_node(clock)
    (gpu, _) = started(GpuSource(nvml=nvml)).read().gpus
    assert [(p.pid, p.gpu_instance) for p in gpu.processes or ()] == [(40002, 2), (40003, 3), (40009, 9)]
    assert [m.processes and m.processes[0].pid for m in gpu.mig_devices] == [40002, 40003, 40009, ()]
    assert gpu.utilization_ratio is None


def test_one_gpu_failing_to_answer_is_down_and_the_others_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    nvml = h100_node(clock, count=3)
    source = started(GpuSource(nvml=nvml))
    broken = nvml.gpus[1].uuid
    source.read()
    original = nvml.nvmlDeviceGetName

    def flaky(handle: object) -> str:
        if nvml.nvmlDeviceGetUUID(handle) == broken:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)
        return original(handle)

    monkeypatch.setattr(nvml, "nvmlDeviceGetName", flaky)
    reading = source.read()
    assert [g.index for g in reading.gpus] == [0, 2]
    assert reading.lost == ((1, broken),)


def test_xid_events_are_counted_from_the_event_thread_and_it_stops_promptly() -> None:
    clock = Clock()
    nvml = h100_node(clock, count=2)
    source = started(GpuSource(nvml=nvml, xid_events=True))
    source.read_slow()  # registers the GPUs
    for _ in range(3):
        nvml.raise_xid(0, 13)
    nvml.raise_xid(1, 94)
    wait_for(lambda: {(x.index, x.xid): x.count for x in source.xid_counts()} == {(0, 13): 3.0, (1, 94): 1.0}, 30)
    began = time.monotonic()
    source.close()
    assert time.monotonic() - began < 5.0
    assert not [t for t in threading.enumerate() if t.name == "nvml-xid-events"]


def test_a_gpu_that_cannot_deliver_xid_events_is_skipped_and_the_others_are_watched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    nvml = h100_node(clock, count=2)
    original = nvml.nvmlDeviceRegisterEvents

    def register(handle: object, types: int, event_set: object) -> None:
        if nvml.nvmlDeviceGetIndex(handle) == 0:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        original(handle, types, event_set)

    monkeypatch.setattr(nvml, "nvmlDeviceRegisterEvents", register)
    source = started(GpuSource(nvml=nvml, xid_events=True))
    source.read_slow()
    nvml.raise_xid(0, 13)
    nvml.raise_xid(1, 43)
    wait_for(source.xid_counts, 30)
    assert [(x.index, x.xid) for x in source.xid_counts()] == [(1, 43)]
    source.close()


def test_without_event_support_the_reason_is_kept_and_nothing_else_breaks(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    nvml = h100_node(clock, count=1)
    monkeypatch.setattr(nvml, "nvmlEventSetCreate", raises(pynvml.NVML_ERROR_NOT_SUPPORTED))
    source = started(GpuSource(nvml=nvml, xid_events=True))
    assert source.xid_unavailable == "Not Supported"
    assert source.read().gpus and source.xid_counts() == ()
    source.close()
