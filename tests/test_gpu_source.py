"""The production GPU module, unchanged, against the fake NVML's scenarios."""

from __future__ import annotations

import pynvml
import pytest

from exporter.fakes.nvml import H100_MEMORY_BYTES, H100_NAME, FakeNvml, h100_node, no_nvml, old_driver_node
from exporter.sources.gpu import GpuSource, NvmlUnavailable
from tests.helpers import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


def started(nvml: FakeNvml) -> GpuSource:
    source = GpuSource(nvml=nvml)
    source.start()
    return source


def test_an_h100_node_reads_every_gpu_in_base_units(clock: Clock) -> None:
    nvml = h100_node(clock, load=lambda _t: 0.5)
    nvml.gpus[3].memory_used = 40 * 1024**3
    reading = started(nvml).read()
    assert reading.driver_version == "570.86.15"
    assert [g.index for g in reading.gpus] == list(range(8))
    assert len({g.uuid for g in reading.gpus}) == 8
    gpu = reading.gpus[3]
    assert gpu.name == H100_NAME
    assert gpu.utilization_ratio == 0.5
    assert gpu.memory_used_bytes == 40 * 1024**3
    assert gpu.memory_total_bytes == H100_MEMORY_BYTES
    assert gpu.power_watts == pytest.approx(70 + 630 * 0.5)
    assert gpu.temperature_celsius == 52
    assert gpu.energy_joules == 0.0


def test_energy_grows_with_power_over_virtual_time(clock: Clock) -> None:
    source = started(h100_node(clock, count=1, load=lambda t: 1.0 if t >= 1010 else 0.0))
    first = source.read().gpus[0].energy_joules
    clock.now += 10  # idle (70 W) until 1010, then the load jumps to full power
    source.read()
    clock.now += 10  # full power (700 W)
    last = source.read().gpus[0].energy_joules
    assert first == 0.0
    # Trapezoids between reads: 10 s from 70 W to 700 W (jump at the read), then 10 s at 700 W.
    assert last == pytest.approx((70 + 700) / 2 * 10 + 700 * 10, rel=1e-6)


def test_an_old_driver_without_the_energy_counter_leaves_only_energy_out(clock: Clock) -> None:
    reading = started(old_driver_node(clock)).read()
    assert reading.driver_version == "450.51.06"
    for gpu in reading.gpus:
        assert gpu.energy_joules is None
        assert gpu.power_watts is not None


def test_a_machine_without_nvml_raises_nvml_unavailable_with_the_reason(clock: Clock) -> None:
    with pytest.raises(NvmlUnavailable, match="NVML Shared Library Not Found"):
        GpuSource(nvml=no_nvml(clock)).start()


def test_reading_before_start_is_an_error_not_a_crash(clock: Clock) -> None:
    with pytest.raises(NvmlUnavailable):
        GpuSource(nvml=h100_node(clock)).read()


def test_a_gpu_lost_mid_run_is_listed_as_lost_and_comes_back(clock: Clock) -> None:
    nvml = h100_node(clock, count=4)
    source = started(nvml)
    uuid = source.read().gpus[2].uuid
    nvml.gpus[2].lost = True
    reading = source.read()
    assert [g.index for g in reading.gpus] == [0, 1, 3]
    assert reading.lost == ((2, uuid),)
    nvml.gpus[2].lost = False
    assert [g.index for g in source.read().gpus] == [0, 1, 2, 3]


def test_unsupported_calls_leave_their_value_out(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = h100_node(clock, count=1)

    def unsupported(*_args: object) -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

    monkeypatch.setattr(nvml, "nvmlDeviceGetTemperature", unsupported)
    monkeypatch.setattr(nvml, "nvmlDeviceGetUtilizationRates", unsupported)
    (gpu,) = started(nvml).read().gpus
    assert gpu.temperature_celsius is None
    assert gpu.utilization_ratio is None
    assert gpu.power_watts is not None


def test_nvml_failing_as_a_whole_raises_nvml_unavailable(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = h100_node(clock, count=1)
    source = started(nvml)

    def broken() -> int:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)

    monkeypatch.setattr(nvml, "nvmlDeviceGetCount", broken)
    with pytest.raises(NvmlUnavailable, match="Unknown Error"):
        source.read()


def test_the_fake_uses_pynvml_error_classes_and_structs(clock: Clock) -> None:
    nvml = h100_node(clock, count=1)
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    assert isinstance(nvml.nvmlDeviceGetMemoryInfo(handle), pynvml.c_nvmlMemory_t)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetHandleByIndex(8)
    assert nvml.NVMLError_GpuIsLost is pynvml.NVMLError_GpuIsLost
