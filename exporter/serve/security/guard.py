"""Guard the HTTP endpoint: the limit on requests in flight, and the live web config in front of every route.

``WebSecurity`` holds the web config in force: the basic auth users with their verdict cache, the
response headers, the rate limit, and the TLS context under the listener. ``watch`` re-reads the
file (and the certificate, key and CA files it names) when their modification time, size or inode
change: a valid new file applies to the next request and the next TLS handshake, a broken one is
logged with every problem and the running one is kept. Switching TLS on or off needs a restart.

The middlewares, outermost first: ``request_limit`` (``--web.max-requests``: over the limit, 503 at
once), then ``guard`` (exporter-toolkit's ``rate_limit`` → 429, the client certificate's allowed
names → 403, basic auth → 401). Every route sits behind them; exporter-toolkit exempts none, so
``/-/healthy`` and ``/-/ready`` too need credentials unless ``basic_auth_excluded_paths`` lists them.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from exporter.config import ConfigError
from exporter.serve.security.auth import BasicAuth
from exporter.serve.security.tls import SwappableContext, peer_names, server_context
from exporter.serve.security.webconfig import WebConfig, load_web_config

WATCH_INTERVAL_SECONDS = 1.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Stamp = tuple[tuple[int, int, int, int] | None, ...]

log = structlog.get_logger("exporter.serve.security")


@dataclass(frozen=True, slots=True)
class _Loaded:
    config: WebConfig
    context: ssl.SSLContext | None
    stamp: Stamp


class TokenBucket:
    """exporter-toolkit's ``rate_limit``: one token per ``interval`` seconds, at most ``burst`` saved."""

    def __init__(self, interval: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval, self._burst, self._clock = interval, burst, clock
        self._tokens, self._at = float(burst), clock()

    def take(self) -> bool:
        """Spend one token if there is one."""
        now = self._clock()
        self._tokens = min(float(self._burst), self._tokens + (now - self._at) / self._interval)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class WebSecurity:
    """The web config in force, read by the middlewares on every request."""

    def __init__(self, path: str | Path) -> None:
        """Load the file; raise ``ConfigError`` listing every problem (the exporter then refuses to start)."""
        self.path = Path(path)
        loaded = _load(self.path)
        self.config = loaded.config
        self.auth = BasicAuth(self.config.basic_auth_users)
        self.ssl_context = SwappableContext(loaded.context) if loaded.context is not None else None
        self._bucket = _bucket(self.config)
        self._stamp = loaded.stamp
        self._failure: tuple[str, ...] | None = None
        """The problems of the broken files on disk, while they are broken."""
        self.reloads = 0
        """Successful reloads since start."""

    @property
    def tls(self) -> bool:
        """Whether the listener serves TLS."""
        return self.ssl_context is not None

    @property
    def summary(self) -> str:
        """What the web config turns on, in a few words (never a secret)."""
        tls = self.config.tls
        parts = [f"TLS, client auth {tls.client_auth_type}" if tls is not None else "plain HTTP"]
        parts.append(f"{len(self.config.basic_auth_users)} basic auth user(s)")
        if self.config.headers:
            parts.append(f"{len(self.config.headers)} header(s)")
        return ", ".join(parts)

    # -- reload --------------------------------------------------------------------------------

    async def watch(self, interval: float = WATCH_INTERVAL_SECONDS) -> None:
        """Re-read the files whenever they change, until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check_for_changes()
            except Exception:  # a bug here must not end the watching, nor the serving
                log.exception("web_config_watch_failed", file=str(self.path))

    async def check_for_changes(self) -> bool:
        """Reload if any of the files changed since the last look; return whether a new config applies.

        While the files on disk are broken, they are tried again on every look (a certificate they name
        may appear later), and the problems are logged again only when they change.
        """
        if self._failure is None and _stamp((self.path, *self.config.files)) == self._stamp:
            return False
        try:
            loaded = await asyncio.to_thread(_load, self.path)
        except ConfigError as exc:
            if tuple(exc.problems) != self._failure:
                log.error(
                    "web_config_reload_failed", file=str(self.path), problems=exc.problems, kept="the running one"
                )
            self._failure = tuple(exc.problems)
            return False
        self._failure = None
        return self._apply(loaded)

    def _apply(self, loaded: _Loaded) -> bool:
        self._stamp = loaded.stamp
        if (loaded.context is None) != (self.ssl_context is None):
            log.error(
                "web_config_reload_failed", file=str(self.path), problems=["switching TLS on or off needs a restart"]
            )
            return False
        if loaded.config.basic_auth_users != self.config.basic_auth_users:
            self.auth = BasicAuth(loaded.config.basic_auth_users)
        if self.ssl_context is not None and loaded.context is not None:
            self.ssl_context.install(loaded.context)
        self.config, self._bucket = loaded.config, _bucket(loaded.config)
        self.reloads += 1
        log.info("web_config_reloaded", file=str(self.path), tls=self.tls, users=len(self.config.basic_auth_users))
        return True

    # -- per request ---------------------------------------------------------------------------

    async def lifecycle(self, _app: web.Application) -> AsyncIterator[None]:
        """The app's cleanup context: watch the files while serving."""
        task = asyncio.create_task(self.watch(), name="web-config-watch")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def add_headers(self, _request: web.Request, response: web.StreamResponse) -> None:
        """``http_server_config.headers`` on every response, errors included."""
        for name, value in self.config.headers.items():
            response.headers[name] = value

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Rate limit, client certificate names, then basic auth, as exporter-toolkit orders them."""
        config = self.config
        if self._bucket is not None and not self._bucket.take():
            return web.Response(status=429, text="Too Many Requests\n")
        if config.tls is not None and config.tls.client_allowed_sans and not self._peer_allowed(request):
            return web.Response(status=403, text="client certificate names none of client_allowed_sans\n")
        needs_credentials = self.auth.enabled and request.path not in config.basic_auth_excluded_paths
        if needs_credentials and not await self.auth.check(request.headers.get("Authorization")):
            return web.Response(status=401, text="Unauthorized\n", headers={"WWW-Authenticate": "Basic"})
        return await handler(request)

    def _peer_allowed(self, request: web.Request) -> bool:
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if transport is not None else None
        allowed = set(self.config.tls.client_allowed_sans) if self.config.tls is not None else set()
        return bool(peer_names(peercert) & allowed)


def request_limit(max_requests: int, unlimited: Collection[str] = ()) -> Middleware:
    """A middleware that answers 503 at once while ``max_requests`` requests are being handled.

    A request counts from its arrival until its handler returns (credential checks included).
    ``unlimited`` paths (health checks) are never refused.
    """
    in_flight = 0

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal in_flight
        if request.path in unlimited:
            return await handler(request)
        if in_flight >= max_requests:
            log.debug("request_refused", path=request.path, in_flight=in_flight, limit=max_requests)
            return web.Response(
                status=503, text="Too many requests in flight (--web.max-requests).\n", headers={"Retry-After": "1"}
            )
        in_flight += 1
        try:
            return await handler(request)
        finally:
            in_flight -= 1

    return limit


def _load(path: Path) -> _Loaded:
    """Read the file and build its TLS context, noting the files' state as they were read."""
    stamp = _stamp((path,))
    config = load_web_config(path)
    stamp += _stamp(config.files)
    context = server_context(config.tls, str(path)) if config.tls is not None else None
    return _Loaded(config, context, stamp)


def _bucket(config: WebConfig) -> TokenBucket | None:
    limit = config.rate_limit
    return TokenBucket(limit.interval_seconds, limit.burst) if limit is not None else None


def _stamp(files: Collection[Path]) -> Stamp:
    stamps: list[tuple[int, int, int, int] | None] = []
    for file in files:
        try:
            st = os.stat(file)
        except OSError:
            stamps.append(None)
        else:
            stamps.append((st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev))
    return tuple(stamps)
