"""Property-based tests of the edges that take untrusted input and are not covered elsewhere: the config
loader from raw text (with the upstream access keys), the whole fetch-and-parse path over real HTTP,
the ``Authorization`` header, and the listen address. No exception escapes but the documented one.

(The parsers have theirs in ``tests/test_servers_properties.py``; config data in ``tests/test_config.py``;
the web config in ``tests/test_webconfig.py``.) The same targets run under atheris: see ``fuzz/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.cli import parse_listen_address
from exporter.config import ConfigError, ServerConfig
from exporter.config.access import header_pairs, upstream_tls
from exporter.serve.security.auth import BasicAuth, parse_basic
from exporter.sources.upstream.fetch import UpstreamError
from exporter.sources.upstream.reader import ServerReader
from tests.helpers import BackgroundLoop, background_loop, parse_config

FEW = settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

CONFIG_WORDS = [
    "servers:",
    "  - name: a",
    "    url: http://127.0.0.1:1/metrics",
    "    url: https://user:pw@127.0.0.1:1/metrics",
    "    bearer_token_file: /etc/hostname",
    "    bearer_token_file: relative",
    "    headers: {X-Api-Key: k}",
    "    headers: {Host: h}",
    "    headers: [1, 2]",
    "    tls: {insecure_skip_verify: true}",
    "    tls: {ca_file: /nonexistent, server_name: ''}",
    "    tls: {cert_file: /etc/hostname}",
    "    timeout: 1s",
    "    kind: vllm",
    "    gpus: [0, 1]",
    "poll_interval: 5s",
    "max_connections: 0",
    "max_connections: 10",
    "max_body_bytes: -1",
    "pricing: {gpu_hourly_cost: {default: 1}}",
    "[",
    "{",
    ": :",
    "\t",
    "- x",
    "&a [*a]",
]


@given(st.lists(st.sampled_from(CONFIG_WORDS), max_size=12))
def test_any_config_text_gives_a_config_or_a_config_error(lines: list[str]) -> None:
    try:
        parse_config("\n".join(lines))
    except ConfigError as exc:
        assert exc.problems and all(p and "\n" not in p for p in exc.problems)


@given(st.text(max_size=400))
def test_any_unicode_config_text_gives_a_config_or_a_config_error(text: str) -> None:
    try:
        parse_config(text)
    except ConfigError as exc:
        assert exc.problems


ANY_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=10,
)


@given(ANY_VALUE)
def test_access_readers_give_a_value_or_a_value_error(value: object) -> None:
    for reader in (header_pairs, upstream_tls):
        try:
            reader(value)
        except ValueError as exc:
            assert str(exc)


@given(st.text(max_size=200))
def test_any_authorization_header_is_credentials_or_none(header: str) -> None:
    parsed = parse_basic(header)
    assert parsed is None or (isinstance(parsed[0], bytes) and isinstance(parsed[1], bytes))


@given(st.one_of(st.text(max_size=100), st.binary(max_size=100).map(lambda b: "Basic " + b.hex())))
def test_checking_any_header_against_a_user_gives_a_verdict(header: str) -> None:
    auth = BasicAuth({"alice": "$2b$04$" + "a" * 53})  # a well-formed hash no password matches
    assert asyncio.run(auth.check(header)) is False


@given(st.text(max_size=40))
def test_any_listen_address_parses_or_raises_value_error(text: str) -> None:
    try:
        address = parse_listen_address(text)
    except ValueError:
        return
    assert 0 <= address.port <= 65535


# -- the whole fetch-and-parse path over real HTTP ------------------------------------------------------


class Body:
    """What the loopback server answers next."""

    payload: bytes = b""
    status: int = 200


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[BackgroundLoop, str]]:
    async def handler(_request: web.Request) -> web.Response:
        return web.Response(body=Body.payload, status=Body.status, headers={"Content-Type": "text/plain"})

    app = web.Application()
    app.router.add_get("/metrics", handler)
    with background_loop() as loop:
        yield loop, loop.serve(app) + "/metrics"


BODIES = st.one_of(
    st.binary(max_size=3000),
    st.text(max_size=2000).map(str.encode),
    st.lists(
        st.sampled_from(
            [
                b'vllm:generation_tokens_total{model_name="m"} 12',
                b'vllm:generation_tokens_total{model_name="m"} NaN',
                b"vllm:num_requests_running 1e400",
                b"# TYPE vllm:generation_tokens_total counter",
                b'vllm:time_to_first_token_seconds_bucket{le="+Inf"} 3',
                b"\xff\xfe",
                b"tgi_request_success 4",
                b"x" * 300,
            ]
        ),
        max_size=30,
    ).map(b"\n".join),
)


@FEW
@given(body=BODIES, status=st.sampled_from([200, 200, 200, 204, 301, 500]), kind=st.sampled_from(["auto", "vllm"]))
def test_any_upstream_answer_is_a_sample_or_a_scrape_error(
    served: tuple[BackgroundLoop, str], body: bytes, status: int, kind: str
) -> None:
    loop, url = served
    Body.payload, Body.status = body, status

    async def poll() -> None:
        async with aiohttp.ClientSession() as session:
            scraper = ServerReader(
                ServerConfig("fuzz", url, kind=kind, timeout=5.0), session, max_body_bytes=2048, max_series=20
            )
            try:
                await scraper.poll()
            except UpstreamError as exc:
                assert str(exc) and "\n" not in str(exc)

    loop.run(poll())
