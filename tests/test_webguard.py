"""The endpoint guard in-process: basic auth and its cache, the rate limit, the request limit, response
headers, and TLS contexts swapped under a live listener. Real HTTP on loopback, no mocks."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import bcrypt
import pytest
import pytest_asyncio
import structlog
from aiohttp import web

from exporter.serve.security.auth import BasicAuth, parse_basic
from exporter.serve.security.guard import TokenBucket, WebSecurity, request_limit
from exporter.serve.security.tls import SwappableContext, peer_names
from tests.certs import CertificateAuthority
from tests.fault_helpers import basic
from tests.helpers import Clock, async_wait_for, listen

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()


# -- basic auth -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_basic_auth_accepts_the_password_and_nothing_else() -> None:
    auth = BasicAuth({"alice": HASH})
    assert await auth.check(basic("alice", "s3cret")["Authorization"])
    assert not await auth.check(basic("alice", "S3cret")["Authorization"])
    assert not await auth.check(basic("mallory", "s3cret")["Authorization"])
    assert not await auth.check(None)


@pytest.mark.asyncio
async def test_a_repeated_credential_pays_bcrypt_once() -> None:
    auth = BasicAuth({"alice": HASH})
    for _ in range(20):
        assert await auth.check(basic("alice", "s3cret")["Authorization"])
        assert not await auth.check(basic("alice", "wrong")["Authorization"])
    assert auth.bcrypt_runs == 2


@pytest.mark.asyncio
async def test_concurrent_requests_with_the_same_new_credentials_share_one_bcrypt_check() -> None:
    auth = BasicAuth({"alice": HASH})
    header = basic("alice", "s3cret")["Authorization"]
    verdicts = await asyncio.gather(*(auth.check(header) for _ in range(50)))
    assert all(verdicts)
    assert auth.bcrypt_runs == 1


@pytest.mark.asyncio
async def test_the_verdict_cache_is_bounded_and_holds_no_password() -> None:
    auth = BasicAuth({"alice": HASH}, cache_size=8)
    for i in range(30):
        await auth.check(basic("alice", f"guess-{i}")["Authorization"])
    assert len(auth._cache) == 8
    assert all(len(key) == 32 and b"guess" not in key for key in auth._cache)


@pytest.mark.asyncio
async def test_hashes_written_by_htpasswd_work() -> None:
    htpasswd_style = HASH.replace("$2b$", "$2y$", 1)
    assert await BasicAuth({"bob": htpasswd_style}).check(basic("bob", "s3cret")["Authorization"])


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer abc",
        "Basic",
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Digest " + base64.b64encode(b"a:b").decode(),
    ],
)
def test_malformed_authorization_headers_carry_no_credentials(header: str) -> None:
    assert parse_basic(header) is None


def test_a_password_may_contain_colons() -> None:
    assert parse_basic("basic " + base64.b64encode(b"u:p:q").decode()) == (b"u", b"p:q")


def test_the_rate_limit_is_a_token_bucket() -> None:
    clock = Clock()
    bucket = TokenBucket(interval=1.0, burst=2, clock=clock)
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.advance(1.0)
    assert [bucket.take() for _ in range(2)] == [True, False]


# -- the middlewares on a real server ---------------------------------------------------------------


class Gate:
    """A route that holds each request until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.waiting = 0

    async def handle(self, _request: web.Request) -> web.Response:
        self.waiting += 1
        await self.release.wait()
        return web.Response(text="done")


@pytest_asyncio.fixture
async def gated() -> AsyncIterator[tuple[Gate, str]]:
    gate = Gate()
    app = web.Application(middlewares=[request_limit(2, unlimited=("/-/healthy",))])
    app.router.add_get("/slow", gate.handle)
    app.router.add_get("/-/healthy", gate.handle)
    runner = await listen(app)
    yield gate, f"http://127.0.0.1:{runner.addresses[0][1]}"
    gate.release.set()
    await runner.cleanup()


@pytest.mark.asyncio
async def test_over_the_request_limit_the_answer_is_503_at_once(gated: tuple[Gate, str]) -> None:
    gate, base = gated
    async with aiohttp.ClientSession() as session:
        first = [asyncio.create_task(session.get(base + "/slow")) for _ in range(2)]
        await async_wait_for(lambda: gate.waiting == 2, what="two requests in flight")
        async with asyncio.timeout(5):
            async with session.get(base + "/slow") as refused:
                assert refused.status == 503
                assert refused.headers["Retry-After"] == "1"
        health = asyncio.create_task(session.get(base + "/-/healthy"))  # never refused
        await async_wait_for(lambda: gate.waiting == 3, what="the health check admitted")
        gate.release.set()
        for response in await asyncio.gather(*first, health):
            assert response.status == 200
            response.release()
        async with session.get(base + "/slow") as again:
            assert again.status == 200


def web_security(tmp_path: Path, text: str) -> WebSecurity:
    path = tmp_path / "web.yml"
    path.write_text(text, encoding="utf-8")
    return WebSecurity(path)


@pytest_asyncio.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[tuple[WebSecurity, str]]:
    security = web_security(
        tmp_path,
        f"""
basic_auth_users: {{alice: '{HASH}'}}
basic_auth_excluded_paths: [/-/healthy]
http_server_config: {{headers: {{X-Frame-Options: deny, X-Content-Type-Options: nosniff}}}}
""",
    )
    app = web.Application(middlewares=[security.guard])
    app.on_response_prepare.append(security.add_headers)
    for path in ("/metrics", "/-/healthy", "/-/ready"):
        app.router.add_get(path, _ok)
    runner = await listen(app)
    yield security, f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def _ok(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


@pytest.mark.asyncio
async def test_without_good_credentials_every_route_answers_401_with_a_challenge(
    guarded: tuple[WebSecurity, str],
) -> None:
    _, base = guarded
    async with aiohttp.ClientSession() as session:
        for path, headers in (("/metrics", {}), ("/-/ready", {}), ("/metrics", basic("alice", "nope"))):
            async with session.get(base + path, headers=headers) as response:
                assert response.status == 401
                assert response.headers["WWW-Authenticate"] == "Basic"
        async with session.get(base + "/metrics", headers=basic("alice", "s3cret")) as response:
            assert response.status == 200


@pytest.mark.asyncio
async def test_excluded_paths_need_no_credentials(guarded: tuple[WebSecurity, str]) -> None:
    _, base = guarded
    async with aiohttp.ClientSession() as session, session.get(base + "/-/healthy") as response:
        assert response.status == 200


@pytest.mark.asyncio
async def test_configured_headers_are_on_every_response_errors_included(guarded: tuple[WebSecurity, str]) -> None:
    _, base = guarded
    async with aiohttp.ClientSession() as session:
        for path, headers, status in (
            ("/metrics", {}, 401),
            ("/metrics", basic("alice", "s3cret"), 200),
            ("/nowhere", basic("alice", "s3cret"), 404),
        ):
            async with session.get(base + path, headers=headers) as response:
                assert response.status == status
                assert response.headers["X-Frame-Options"] == "deny"
                assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.asyncio
async def test_a_rate_limit_answers_429_past_its_burst(tmp_path: Path) -> None:
    security = web_security(tmp_path, "rate_limit: {interval: 1h, burst: 2}")
    app = web.Application(middlewares=[security.guard])
    app.router.add_get("/metrics", _ok)
    runner = await listen(app)
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as session:
            statuses = []
            for _ in range(3):
                async with session.get(base + "/metrics") as response:
                    statuses.append(response.status)
        assert statuses == [200, 200, 429]
    finally:
        await runner.cleanup()


# -- reloading --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_changed_file_applies_and_a_broken_one_keeps_the_running_config(tmp_path: Path) -> None:
    security = web_security(tmp_path, f"basic_auth_users: {{alice: '{HASH}'}}")
    assert not await security.check_for_changes()  # nothing changed
    security.path.write_text(f"basic_auth_users: {{bob: '{HASH}'}}\n", encoding="utf-8")
    assert await security.check_for_changes()
    assert await security.auth.check(basic("bob", "s3cret")["Authorization"])
    assert not await security.auth.check(basic("alice", "s3cret")["Authorization"])
    security.path.write_text("basic_auth_users: {bob: plaintext}\nbogus: 1\n", encoding="utf-8")
    with structlog.testing.capture_logs() as logs:
        assert not await security.check_for_changes()
    (failure,) = [entry for entry in logs if entry["event"] == "web_config_reload_failed"]
    assert sorted(p.split(":")[0] for p in failure["problems"]) == ["basic_auth_users.bob", "bogus"]
    assert "plaintext" not in str(failure)
    assert await security.auth.check(basic("bob", "s3cret")["Authorization"])  # the running config is kept
    assert security.reloads == 1


@pytest.mark.asyncio
async def test_a_config_naming_a_certificate_not_there_yet_applies_once_it_appears(tmp_path: Path) -> None:
    ca = CertificateAuthority()
    ca.server("localhost").write(tmp_path, "old")
    security = web_security(tmp_path, "tls_server_config: {cert_file: old.crt, key_file: old.key}")
    security.path.write_text("tls_server_config: {cert_file: new.crt, key_file: new.key}\n", encoding="utf-8")
    with structlog.testing.capture_logs() as logs:
        assert not await security.check_for_changes()
        assert not await security.check_for_changes()  # the same problems are not logged twice
    assert [entry["event"] for entry in logs] == ["web_config_reload_failed"]
    ca.server("localhost").write(tmp_path, "new")  # only the certificate changes, not the web config
    assert await security.check_for_changes()
    assert security.config.tls is not None and security.config.tls.cert_file == tmp_path / "new.crt"


@pytest.mark.asyncio
async def test_turning_tls_on_needs_a_restart(tmp_path: Path) -> None:
    ca = CertificateAuthority()
    ca.server("localhost").write(tmp_path, "server")
    security = web_security(tmp_path, "")
    security.path.write_text("tls_server_config: {cert_file: server.crt, key_file: server.key}\n", encoding="utf-8")
    with structlog.testing.capture_logs() as logs:
        assert not await security.check_for_changes()
    assert logs[-1]["problems"] == ["switching TLS on or off needs a restart"]
    assert security.ssl_context is None


@pytest.mark.asyncio
async def test_new_handshakes_use_the_context_installed_last(tmp_path: Path) -> None:
    old_ca, new_ca = CertificateAuthority("old CA"), CertificateAuthority("new CA")
    contexts = []
    for ca, name in ((old_ca, "old"), (new_ca, "new")):
        cert, key = ca.server("localhost").write(tmp_path, name)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        contexts.append(context)
    swappable = SwappableContext(contexts[0])
    app = web.Application()
    app.router.add_get("/", _ok)
    runner = await listen(app, context=swappable)
    url = f"https://127.0.0.1:{runner.addresses[0][1]}/"

    async def status(ca: CertificateAuthority) -> int | str:
        trust = ssl.create_default_context(cadata=ca.pem)
        try:
            async with aiohttp.ClientSession() as session, session.get(url, ssl=trust) as response:
                return response.status
        except aiohttp.ClientConnectorCertificateError:
            return "untrusted"

    try:
        assert (await status(old_ca), await status(new_ca)) == (200, "untrusted")
        swappable.install(contexts[1])
        assert (await status(old_ca), await status(new_ca)) == ("untrusted", 200)
    finally:
        await runner.cleanup()


def test_peer_names_are_printed_as_go_prints_them() -> None:
    peercert = {
        "subjectAltName": (
            ("DNS", "scraper.example"),
            ("IP Address", "2001:DB8:0:0:0:0:0:1\n"),
            ("URI", "spiffe://cluster/ns/monitoring/sa/prometheus"),
            ("othername", "<unsupported>"),
        )
    }
    assert peer_names(peercert) == {
        "scraper.example",
        "2001:db8::1",
        "spiffe://cluster/ns/monitoring/sa/prometheus",
    }
