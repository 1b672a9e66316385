"""The llama.cpp adapter: both recorded bodies, ``/slots`` across versions, ``/v1/models``, and a loopback poll."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from exporter.config import ServerConfig
from exporter.model import ModelSample, ServerSample, TokenCounting
from exporter.sources.servers import ParseError, detect
from exporter.sources.servers.llamacpp import (
    merge_model_name,
    merge_slots,
    model_name,
    parse,
    tokens_in_flight,
)
from exporter.sources.upstream.reader import ServerReader
from tests.conftest import fixture_text
from tests.helpers import listen

REAL = "llamacpp-real-tinymodel.prom"
RECONSTRUCTED = "llama.cpp-reconstructed.prom"


def values(name: str) -> ModelSample:
    sample = parse(fixture_text("servers", name))
    assert list(sample.models) == [""]
    return sample.models[""]


def test_the_real_capture_gives_its_exact_counts() -> None:
    assert values(REAL) == ModelSample(
        prompt_tokens=194.0,
        generation_tokens=640.0,
        requests_finished=None,
        requests_running=0.0,
        requests_waiting=0.0,
        kv_cache_usage_ratio=None,
    )


def test_the_reconstructed_body_reads_six_significant_digit_values() -> None:
    assert values(RECONSTRUCTED) == ModelSample(
        prompt_tokens=1_234_570.0,
        generation_tokens=2_345_680.0,
        requests_running=2.0,
        requests_waiting=0.0,
    )


@pytest.mark.parametrize("name", [REAL, RECONSTRUCTED])
def test_kind_auto_detects_both_recorded_bodies_as_llamacpp(name: str) -> None:
    assert detect(fixture_text("servers", name)).kind == "llamacpp"


def test_llamacpp_counts_tokens_when_requests_finish_and_names_no_version() -> None:
    sample = parse(fixture_text("servers", REAL))
    assert (sample.kind, sample.token_counting, sample.version) == ("llamacpp", TokenCounting.AT_COMPLETION, "")


def test_the_server_computed_throughput_gauges_are_never_read() -> None:
    body = fixture_text("servers", REAL).replace("llamacpp:tokens_predicted_total 640", "")
    model = parse(body).models[""]
    assert model.generation_tokens is None  # not 1179.98 from predicted_tokens_seconds


def test_an_older_body_yields_its_kv_cache_ratio_clamped() -> None:
    body = "llamacpp:tokens_predicted_total 10\nllamacpp:kv_cache_usage_ratio 1.5\n"
    assert parse(body).models[""].kv_cache_usage_ratio == 1.0


def test_a_body_without_llamacpp_families_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match=r"no llama\.cpp metrics found"):
        parse("llamacpp:unknown_family 1\n")


def test_busy_slots_of_a_real_server_add_up_their_decoded_tokens() -> None:
    assert tokens_in_flight(fixture_text("servers", "llamacpp-slots-busy.json")) == 317 + 318


def test_an_idle_slot_that_remembers_its_last_request_counts_nothing() -> None:
    assert tokens_in_flight(fixture_text("servers", "llamacpp-slots-idle.json")) == 0.0


OLD_SLOTS = [
    {"id": 0, "state": 0, "next_token": {"has_next_token": False, "n_remain": -1, "n_decoded": 512}},
    {"id": 1, "state": 1, "next_token": {"has_next_token": True, "n_remain": 90, "n_decoded": 38}},
]
"""The 2024 shape: ``state`` instead of ``is_processing``, ``next_token`` an object; idle slots keep their count."""


def test_older_slot_bodies_count_only_the_busy_slots() -> None:
    assert tokens_in_flight(json.dumps(OLD_SLOTS)) == 38.0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("<html>", "did not answer with JSON"),
        ('{"slots": []}', "a list of slot objects"),
        ("[1, 2]", "a list of slot objects"),
        ('[{"id": 0}]', "neither is_processing nor state"),
        ('[{"is_processing": true, "next_token": [{}]}]', "no next_token.n_decoded"),
        ('[{"is_processing": true, "next_token": {"n_decoded": -3}}]', "no next_token.n_decoded"),
        ('[{"is_processing": true, "next_token": {"n_decoded": true}}]', "no next_token.n_decoded"),
        ("[" * 100_000 + "]" * 100_000, "did not answer with JSON"),
    ],
)
def test_an_unreadable_slots_body_is_a_parse_error(body: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        tokens_in_flight(body)


def test_merging_slots_sets_the_tokens_in_flight_and_keeps_the_counters() -> None:
    sample = merge_slots(parse(fixture_text("servers", REAL)), fixture_text("servers", "llamacpp-slots-busy.json"))
    model = sample.models[""]
    assert (model.generation_tokens, model.generation_tokens_in_flight) == (640.0, 635.0)


def test_the_model_is_named_by_the_one_model_the_server_lists() -> None:
    assert model_name(fixture_text("servers", "llamacpp-v1-models.json")) == "tiny.gguf"


@pytest.mark.parametrize(
    ("model_id", "name"),
    [
        ("/models/llama-3-8b.Q4_K_M.gguf", "llama-3-8b.Q4_K_M.gguf"),
        ("unsloth/Qwen3-8B-GGUF", "unsloth/Qwen3-8B-GGUF"),
        ("x" * 1000, "x" * 256),
    ],
)
def test_a_gguf_path_loses_its_folders_and_an_alias_is_kept(model_id: str, name: str) -> None:
    assert model_name(json.dumps({"data": [{"id": model_id}]})) == name


@pytest.mark.parametrize(
    "body",
    ['{"data": []}', '{"data": [{"id": "a"}, {"id": "b"}]}', '{"data": [{"id": ""}]}', "[]", '{"object": "list"}'],
)
def test_a_models_listing_without_exactly_one_named_model_is_a_parse_error(body: str) -> None:
    with pytest.raises(ParseError):
        model_name(body)


def test_a_model_already_named_keeps_its_name() -> None:
    sample = ServerSample(kind="llamacpp", models={"mine": ModelSample()}, token_counting=TokenCounting.AT_COMPLETION)
    assert merge_model_name(sample, '{"data": [{"id": "theirs"}]}') is sample


class FakeLlamaServer:
    """llama-server's three endpoints under a path prefix, recording the order in which they are asked."""

    def __init__(self, slots_status: int = 200) -> None:
        self.slots_status = slots_status
        self.asked: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        path = request.match_info["tail"]
        self.asked.append(path)
        if path == "metrics":
            return web.Response(text=fixture_text("servers", REAL), content_type="text/plain")
        if path == "slots" and self.slots_status == 200:
            return web.json_response(text=fixture_text("servers", "llamacpp-slots-busy.json"))
        if path == "slots":
            return web.json_response({"error": {"code": 501, "message": "slots endpoint disabled"}}, status=501)
        if path == "v1/models":
            return web.json_response(text=fixture_text("servers", "llamacpp-v1-models.json"))
        return web.Response(status=404)


@contextlib.asynccontextmanager
async def serving(fake: FakeLlamaServer) -> AsyncIterator[str]:
    """Serve ``fake`` on 127.0.0.1 under ``/llama/``; yield its metrics URL."""
    app = web.Application()
    app.router.add_get("/llama/{tail:.*}", fake.handle)
    runner = await listen(app)
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/llama/metrics"
    finally:
        await runner.cleanup()


async def poll(fake: FakeLlamaServer, model: str | None = None) -> ServerSample:
    async with serving(fake) as url, aiohttp.ClientSession() as session:
        config = ServerConfig(name="llama", url=url, kind="auto", model=model, timeout=5.0)
        return await ServerReader(config, session, max_body_bytes=1 << 20, max_series=1000).poll()


@pytest.mark.asyncio
async def test_a_poll_reads_metrics_then_slots_then_models_beside_the_metrics_path() -> None:
    fake = FakeLlamaServer()
    sample = await poll(fake)
    assert fake.asked == ["metrics", "slots", "v1/models"]
    assert list(sample.models) == ["tiny.gguf"]
    assert sample.models["tiny.gguf"].generation_tokens_in_flight == 635.0


@pytest.mark.asyncio
async def test_a_server_without_slots_is_still_up_without_tokens_in_flight() -> None:
    sample = await poll(FakeLlamaServer(slots_status=501))
    assert sample.models["tiny.gguf"].generation_tokens == 640.0
    assert sample.models["tiny.gguf"].generation_tokens_in_flight is None


@pytest.mark.asyncio
async def test_the_configured_model_name_wins_over_the_servers_listing() -> None:
    sample = await poll(FakeLlamaServer(), model="tiny-random-llama")
    assert list(sample.models) == ["tiny-random-llama"]
