"""Properties of attribution: shares split a GPU, never copy it; per-GPU throughput adds up to the servers'."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter import derive
from exporter.attribution.resolve import Attribution, Claim, shares
from exporter.model import GpuReading, GpuSample, MigDeviceSample

GPUS = 8
GIB = 1024.0**3
READING = GpuReading("570", tuple(GpuSample(i, f"GPU-{i}", "H100", memory_total_bytes=80 * GIB) for i in range(GPUS)))

memory = st.one_of(st.none(), st.floats(min_value=0.0, max_value=80 * GIB, allow_nan=False))
claims = st.dictionaries(st.integers(0, GPUS - 1), memory, min_size=0, max_size=GPUS)
servers = st.dictionaries(st.text("abcdefgh", min_size=1, max_size=3), claims, min_size=1, max_size=6)
prices = st.floats(min_value=0.0, max_value=20.0, allow_nan=False)
rates = st.one_of(st.none(), st.floats(min_value=0.0, max_value=1e6, allow_nan=False))


def attributed(picked: dict[str, dict[int, float | None]]) -> dict[str, Attribution]:
    return {
        name: Attribution("processes", tuple(Claim(f"GPU-{i}", m) for i, m in c.items())) for name, c in picked.items()
    }


@given(servers)
def test_the_shares_of_every_claimed_gpu_sum_to_one(picked: dict[str, dict[int, float | None]]) -> None:
    result = shares(attributed(picked), READING)
    per_gpu: dict[int, float] = {}
    for server_shares in result.values():
        for share in server_shares:
            assert 0.0 <= share.weight <= 1.0
            per_gpu[share.index] = per_gpu.get(share.index, 0.0) + share.weight
    claimed = {i for c in picked.values() for i in c}
    assert set(per_gpu) == claimed
    assert all(math.isclose(total, 1.0, rel_tol=1e-9) for total in per_gpu.values())


@given(servers, st.lists(prices, min_size=GPUS, max_size=GPUS), st.floats(0.0, 1.0), st.floats(0.0, 1000.0))
def test_shared_gpu_cost_splits_sum_to_the_gpus_cost(
    picked: dict[str, dict[int, float | None]], hourly: list[float], kwh: float, watts: float
) -> None:
    result = shares(attributed(picked), READING)
    per_gpu_cost: dict[int, float] = {}
    for server_shares in result.values():
        for share in server_shares:
            inputs = [derive.GpuCostInput(share, hourly[share.index], watts)]
            per_gpu_cost[share.index] = per_gpu_cost.get(share.index, 0.0) + derive.server_cost_per_second(inputs, kwh)
    for index, cost in per_gpu_cost.items():
        assert cost == pytest.approx(hourly[index] / 3600 + watts * kwh / 3.6e6, rel=1e-9, abs=1e-15)


@given(servers, st.dictionaries(st.text("abcdefgh", min_size=1, max_size=3), rates))
def test_per_gpu_attributed_tokens_per_second_sum_to_the_server_totals(
    picked: dict[str, dict[int, float | None]], generation: dict[str, float | None]
) -> None:
    result = shares(attributed(picked), READING)
    per_gpu = derive.gpu_generation_rates((generation.get(name), result[name]) for name in picked)
    expected = sum(generation.get(name) or 0.0 for name in picked if result[name])
    assert sum(per_gpu.values()) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert all(v >= 0 for v in per_gpu.values())


@given(servers)
def test_memory_shares_follow_memory_when_every_claimant_knows_it(picked: dict[str, dict[int, float | None]]) -> None:
    weights = derive.memory_shares({s: {str(i): m for i, m in c.items()} for s, c in picked.items()})
    for gpu in {str(i) for c in picked.values() for i in c}:
        holders = {s: c[int(gpu)] for s, c in picked.items() if int(gpu) in c}
        known = [m for m in holders.values() if m is not None]
        if len(known) == len(holders) and sum(known) > 0:
            for server, used in holders.items():
                assert weights[server][gpu] == pytest.approx((used or 0.0) / sum(known))
        else:
            assert all(weights[s][gpu] == pytest.approx(1 / len(holders)) for s in holders)


@given(
    st.lists(st.integers(1, 40), min_size=1, max_size=7),
    st.dictionaries(st.text("abc", min_size=1, max_size=2), st.sets(st.integers(0, 6)), min_size=1, max_size=4),
)
def test_mig_instances_split_only_their_own_share_of_the_gpu(sizes: list[int], picked: dict[str, set[int]]) -> None:
    total = 80 * GIB
    sizes = sizes[: max(1, len(sizes))]
    scale = min(1.0, 80 / sum(sizes))
    migs = tuple(
        MigDeviceSample(f"MIG-{i}", i, 0, f"{n}g", memory_total_bytes=n * GIB * scale) for i, n in enumerate(sizes)
    )
    reading = GpuReading("570", (GpuSample(0, "GPU-0", "H100", memory_total_bytes=total, mig_devices=migs),))
    valid = {s: {i for i in c if i < len(migs)} for s, c in picked.items()}
    result = shares({s: Attribution("kubelet", tuple(Claim(f"MIG-{i}") for i in c)) for s, c in valid.items()}, reading)
    on_gpu = sum(share.weight for server_shares in result.values() for share in server_shares)
    claimed = {i for c in valid.values() for i in c}
    assert on_gpu == pytest.approx(sum(migs[i].memory_total_bytes or 0.0 for i in claimed) / total)
    assert on_gpu <= 1.0 + 1e-9
