"""Each fake NVML scenario through the real GPU module, poller and exposition: the series a scrape gets.

The poller runs in virtual time over loopback servers; only the XID test waits, in real time, for the
event thread, and it waits on a condition.
"""

from __future__ import annotations

import pynvml
import pytest

from exporter.config import ServerConfig
from exporter.fakes.nvml import (
    H100_MEMORY_BYTES,
    MIG_LAYOUT,
    h100_node,
    lost_gpu_node,
    mig_node,
    no_nvml,
    old_driver_node,
    xid_node,
)
from exporter.model import CLOCK_EVENT_REASONS
from tests.gpu_support import gpu_names, node, series, text_of, value
from tests.helpers import Clock, async_wait_for

MIB = 1024 * 1024


def tp4(name: str, first: int) -> ServerConfig:
    return ServerConfig(name=name, url="", kind="vllm", gpus=tuple(range(first, first + 4)), timeout=1.0)


@pytest.mark.asyncio
async def test_an_h100x8_node_with_two_tp4_servers_reports_every_gpu_series() -> None:
    clock = Clock()
    nvml = h100_node(clock)
    for gpu in nvml.gpus[:4]:
        gpu.load = lambda _t: 0.9  # llama: near the power limit
    async with node(nvml, clock, [tp4("llama", 0), tp4("qwen", 4)], gpm=True) as n:
        text = text_of(await n.rounds(8, {"llama": 2000.0, "qwen": 400.0}))
    assert value(text, "inference_server_gpus", server="llama") == 4.0
    assert value(text, "inference_gpu_generation_tokens_per_second", gpu="0") == pytest.approx(500.0)
    assert value(text, "inference_gpu_generation_tokens_per_second", gpu="7") == pytest.approx(100.0)
    events = series(text, "inference_gpu_clock_event_active")
    assert len(events) == 8 * len(CLOCK_EVENT_REASONS)
    assert value(text, "inference_gpu_clock_event_active", gpu="0", reason="sw_power_cap") == 1.0
    assert value(text, "inference_gpu_clock_event_active", gpu="0", reason="gpu_idle") == 0.0
    assert value(text, "inference_gpu_clock_event_active", gpu="5", reason="gpu_idle") == 1.0
    assert sum(events.values()) == 8  # one active reason per GPU, every other reason 0
    assert value(text, "inference_gpu_sm_clock_hertz", gpu="0") == pytest.approx(1780e6)
    assert value(text, "inference_gpu_sm_clock_hertz", gpu="5") == pytest.approx(345e6)
    assert value(text, "inference_gpu_memory_clock_hertz", gpu="3") == pytest.approx(2619e6)
    assert value(text, "inference_gpu_power_limit_watts", gpu="2") == 700.0
    assert value(text, "inference_gpu_power_watts", gpu="1") == pytest.approx(70 + 630 * 0.9)
    assert value(text, "inference_gpu_ecc_errors_total", gpu="4", type="uncorrected") == 0.0
    assert value(text, "inference_gpu_sm_activity_ratio", gpu="0") == pytest.approx(0.9)
    assert value(text, "inference_gpu_tensor_activity_ratio", gpu="0") == pytest.approx(0.63)
    assert value(text, "inference_gpu_dram_bandwidth_utilization_ratio", gpu="6") == 0.0
    assert value(text, "inference_server_gpu_share_ratio", server="qwen", gpu="4") == 1.0
    assert value(text, "inference_server_attribution_info", server="llama", method="config") == 1.0


@pytest.mark.asyncio
async def test_without_gpm_opted_in_no_profiling_series_are_served() -> None:
    clock = Clock()
    async with node(h100_node(clock, count=2, load=lambda _t: 0.5), clock) as n:
        text = text_of(await n.rounds(3))
    assert not series(text, "inference_gpu_sm_activity_ratio")
    assert value(text, "inference_gpu_utilization_ratio", gpu="1") == 0.5


@pytest.mark.asyncio
async def test_a_mig_gpu_reports_each_instance_and_never_copies_the_parent() -> None:
    clock = Clock()
    nvml = mig_node(clock)
    mig = nvml.gpus[0].mig
    assert mig is not None
    server = ServerConfig(name="small", url="", kind="vllm", gpus=(mig[2].uuid,), timeout=1.0)
    async with node(nvml, clock, [server], gpm=True) as n:
        text = text_of(await n.rounds(3, {"small": 100.0}))
    info = series(text, "inference_mig_device_info")
    assert {dict(k)["profile"] for k in info} == {"3g.40gb", "2g.20gb", "1g.10gb"}
    assert {dict(k)["gpu_instance"] for k in info} == {str(gi) for _, gi, _, _ in MIG_LAYOUT}
    assert all(dict(k)["gpu"] == "0" for k in info)
    activity = {dict(k)["mig_uuid"]: v for k, v in series(text, "inference_mig_device_sm_activity_ratio").items()}
    assert activity == pytest.approx({m.uuid: load for m, load in zip(mig, (0.9, 0.5, 0.2, 0.0), strict=True)})
    total = value(text, "inference_mig_device_memory_total_bytes", mig_uuid=mig[0].uuid)
    assert total == 40448 * MIB
    assert value(text, "inference_mig_device_memory_used_bytes", mig_uuid=mig[3].uuid) == 0.0
    # The parent in MIG mode has no utilization of its own, and no GPM ratio copied from its instances.
    assert value(text, "inference_gpu_utilization_ratio", gpu="0") is None
    assert value(text, "inference_gpu_sm_activity_ratio", gpu="0") is None
    assert value(text, "inference_gpu_utilization_ratio", gpu="1") == 0.4
    # A server on one 1g.10gb instance pays that instance's share of the GPU, not the whole GPU.
    share = value(text, "inference_server_gpu_share_ratio", server="small", gpu="0")
    assert share == pytest.approx(9984 * MIB / H100_MEMORY_BYTES)
    assert value(text, "inference_server_gpus", server="small") == 1.0


@pytest.mark.asyncio
async def test_a_gpu_lost_mid_run_drops_its_series_and_comes_back_without_a_restart() -> None:
    clock = Clock()
    nvml = lost_gpu_node(clock)  # GPU 2 is lost from 20 s to 60 s after start
    async with node(nvml, clock, [tp4("a", 0)]) as n:
        before = text_of(await n.rounds(1, {"a": 100.0}))
        clock.advance(25.0)
        during = text_of(await n.rounds(1, {"a": 100.0}))
        clock.advance(40.0)
        after = text_of(await n.rounds(1, {"a": 100.0}))
    assert value(before, "inference_gpu_up", gpu="2") == 1.0
    assert value(during, "inference_gpu_up", gpu="2") == 0.0
    assert gpu_names(during, "2") == {
        "inference_gpu_up",
        "inference_server_gpu_info",
        "inference_server_gpu_share_ratio",
    }
    for other in ("0", "1", "3"):
        assert value(during, "inference_gpu_up", gpu=other) == 1.0
        assert value(during, "inference_gpu_power_watts", gpu=other) is not None
    assert value(during, "inference_nvml_up") == 1.0
    assert value(after, "inference_gpu_up", gpu="2") == 1.0
    assert value(after, "inference_gpu_power_watts", gpu="2") is not None


@pytest.mark.asyncio
async def test_xid_events_are_counted_per_gpu_and_code_without_missing_a_repeat() -> None:
    clock = Clock()
    nvml = xid_node(clock)  # scheduled: XID 31 on GPU 1 at +2 s, +12 s, ...; XID 48 on GPU 2 at +3 s
    async with node(nvml, clock, xid_events=True) as n:
        await n.rounds(1, step=0.0)
        for _ in range(5):
            nvml.raise_xid(3, 79)  # five in a burst, faster than any scrape
        clock.advance(13.0)  # lets the two scheduled XID 31 and the XID 48 fire

        def counted() -> bool:
            xids = {(x.index, x.xid): x.count for x in n.poller.snapshot().xid_errors}
            return xids == {(1, 31): 2.0, (2, 48): 1.0, (3, 79): 5.0}

        await async_wait_for(counted, 30, what="every XID counted")
        nvml.gpus[3].lost = True  # XID 79: fallen off the bus
        text = text_of(await n.rounds(1, step=0.0))
    assert value(text, "inference_gpu_xid_errors_total", gpu="1", xid="31") == 2.0
    assert value(text, "inference_gpu_xid_errors_total", gpu="2", xid="48") == 1.0
    assert value(text, "inference_gpu_ecc_errors_total", gpu="2", type="uncorrected") == 1.0
    assert value(text, "inference_gpu_up", gpu="3") == 0.0
    assert gpu_names(text, "3") == {"inference_gpu_up", "inference_gpu_xid_errors_total"}
    assert value(text, "inference_gpu_xid_errors_total", gpu="3", xid="79") == 5.0


@pytest.mark.asyncio
async def test_an_old_driver_without_energy_counter_or_gpm_integrates_power_and_skips_profiling() -> None:
    clock = Clock()
    nvml = old_driver_node(clock)
    for gpu in nvml.gpus:
        gpu.load = lambda _t: 0.5
    server = ServerConfig(name="a", url="", kind="vllm", gpus=(0, 1), timeout=1.0)
    async with node(nvml, clock, [server], gpm=True) as n:
        snapshot = await n.rounds(7, {"a": 1000.0})
    text = text_of(snapshot)
    power = 70 + 630 * 0.5
    assert value(text, "inference_gpu_power_watts", gpu="0") == pytest.approx(power)
    assert value(text, "inference_gpu_energy_joules_total", gpu="0") == pytest.approx(power * 30.0)
    assert not series(text, "inference_gpu_sm_activity_ratio")
    assert value(text, "inference_gpu_clock_event_active", gpu="1", reason="gpu_idle") == 0.0  # the old call
    view = next(s for s in snapshot.servers if s.name == "a")
    assert view.rates["m"].energy_joules_per_generation_token == pytest.approx(2 * power / 1000.0)


@pytest.mark.asyncio
async def test_a_machine_without_nvml_serves_no_gpu_series_and_keeps_the_servers() -> None:
    clock = Clock()
    async with node(no_nvml(clock), clock, [tp4("a", 0)]) as n:
        text = text_of(await n.rounds(3, {"a": 50.0}))
    assert value(text, "inference_nvml_up") == 0.0
    assert not [line for line in text.splitlines() if line.startswith(("inference_gpu_", "inference_mig_"))]
    assert value(text, "inference_generation_tokens_per_second", server="a") == pytest.approx(50.0)


@pytest.mark.asyncio
async def test_the_demo_node_shows_power_capping_under_high_load_naturally() -> None:
    clock = Clock()
    nvml = h100_node(clock, count=2)
    nvml.gpus[0].load = lambda t: 0.95 if t >= 1010 else 0.3
    async with node(nvml, clock) as n:
        calm = text_of(await n.rounds(1))
        clock.advance(10.0)
        busy = text_of(await n.rounds(1))
    assert value(calm, "inference_gpu_clock_event_active", gpu="0", reason="sw_power_cap") == 0.0
    assert value(busy, "inference_gpu_clock_event_active", gpu="0", reason="sw_power_cap") == 1.0
    assert value(busy, "inference_gpu_sm_clock_hertz", gpu="0") < value(calm, "inference_gpu_sm_clock_hertz", gpu="0")


@pytest.mark.asyncio
async def test_thermal_slowdown_from_nvml_is_reported_as_its_own_reason() -> None:
    clock = Clock()
    nvml = h100_node(clock, count=1, load=lambda _t: 0.5)
    nvml.gpus[0].extra_clock_events = (
        pynvml.nvmlClocksEventReasonHwThermalSlowdown | pynvml.nvmlClocksEventReasonSwThermalSlowdown
    )
    async with node(nvml, clock) as n:
        text = text_of(await n.rounds(1))
    active = {dict(k)["reason"] for k, v in series(text, "inference_gpu_clock_event_active").items() if v == 1.0}
    assert active == {"hw_thermal_slowdown", "sw_thermal_slowdown"}
