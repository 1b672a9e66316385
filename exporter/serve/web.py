"""The HTTP endpoint: ``/metrics`` from pre-rendered bytes, the status page and its JSON, health, readiness, reload.

State sits under typed ``web.AppKey``s; setup and teardown of the service run in ``cleanup_ctx``.
Every handler reads what the latest published snapshot made and returns; none waits for polling.
A handler takes the service's current ``Exposition`` (or status board) once, so a snapshot
published while it runs never mixes into its answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from exporter.exposition.cache import Variant
from exporter.exposition.text import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE
from exporter.serve.security.guard import WebSecurity, request_limit
from exporter.serve.service import Service
from exporter.serve.status import CONTENT_SECURITY_POLICY, Links

SERVICE = web.AppKey("service", Service)


@dataclass(frozen=True, slots=True)
class WebSettings:
    """What the command line says about serving."""

    telemetry_path: str = "/metrics"
    enable_lifecycle: bool = False
    """Accept ``POST /-/reload`` (``--web.enable-lifecycle``, as Prometheus)."""
    max_requests: int = 40
    """Requests handled at once before more get 503 at once (``--web.max-requests``; 0: no limit)."""
    security: WebSecurity | None = None
    """The web config (``--web.config.file``): TLS, basic auth, headers; ``None`` serves plain HTTP to all."""


SETTINGS = web.AppKey("settings", WebSettings)


def build_app(service: Service, settings: WebSettings) -> web.Application:
    """The aiohttp application, with the service started and stopped by its cleanup context.

    Every route sits behind the request limit and the web config's guard (auth, rate limit, headers).
    """
    app = web.Application(middlewares=_middlewares(settings))
    if settings.security is not None:
        app.cleanup_ctx.append(settings.security.lifecycle)
        app.on_response_prepare.append(settings.security.add_headers)
    app[SERVICE] = service
    app.cleanup_ctx.append(_service_lifecycle)
    app.router.add_get(settings.telemetry_path, metrics)
    if settings.telemetry_path != "/":
        app.router.add_get("/", status_page)
    app.router.add_get("/api/v1/status", status_api)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    app[SETTINGS] = settings
    return app


def _middlewares(settings: WebSettings) -> list[Middleware]:
    chain: list[Middleware] = []
    if settings.max_requests > 0:
        chain.append(request_limit(settings.max_requests, unlimited=("/-/healthy", "/-/ready")))
    if settings.security is not None:
        chain.append(settings.security.guard)
    return chain


async def _service_lifecycle(app: web.Application) -> AsyncIterator[None]:
    service = app[SERVICE]
    await service.start()
    yield
    await service.stop()


def choose_variant(request: web.Request) -> Variant:
    """OpenMetrics when the scraper accepts it, gzip when it accepts that."""
    accept = request.headers.get("Accept", "")
    encoding = request.headers.get("Accept-Encoding", "")
    return Variant(openmetrics="application/openmetrics-text" in accept, gzip="gzip" in encoding)


async def metrics(request: web.Request) -> web.Response:
    """Serve the latest snapshot's bytes (made up front, or by the first scrape of a form nobody expected); no I/O."""
    variant = choose_variant(request)
    body = request.app[SERVICE].exposition.body(variant)
    headers = {"Content-Type": OPENMETRICS_CONTENT_TYPE if variant.openmetrics else TEXT_CONTENT_TYPE}
    if variant.gzip:
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, headers=headers)


async def healthy(_request: web.Request) -> web.Response:
    """200 while the process serves HTTP."""
    return web.Response(text="OK\n")


async def ready(request: web.Request) -> web.Response:
    """200 once every source has been polled once, 503 before."""
    if request.app[SERVICE].ready:
        return web.Response(text="ready\n")
    return web.Response(status=503, text="not ready: first poll not finished\n")


async def reload(request: web.Request) -> web.Response:
    """Re-read the configuration: 200 when applied, 500 with every problem when it was kept."""
    if not request.app[SETTINGS].enable_lifecycle:
        return web.Response(status=403, text="Lifecycle API is not enabled (start with --web.enable-lifecycle).\n")
    result = await asyncio.shield(request.app[SERVICE].reload())  # a client that hangs up never half-applies it
    if not result.ok:
        problems = "".join(f"  {problem}\n" for problem in result.problems)
        return web.Response(status=500, text=f"failed to reload config, previous one kept:\n{problems}")
    added, removed = ", ".join(result.added) or "none", ", ".join(result.removed) or "none"
    return web.Response(text=f"reloaded; servers added: {added}; removed: {removed}\n")


def _status_headers(content_type: str, compress: bool) -> dict[str, str]:
    headers = {
        "Content-Type": content_type,
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    }
    if compress:
        headers["Content-Encoding"] = "gzip"
    return headers


async def status_page(request: web.Request) -> web.Response:
    """The live status page: rendered at most once per snapshot, then served from its bytes."""
    links = Links(metrics=request.app[SETTINGS].telemetry_path.lstrip("/"))
    compress = "gzip" in request.headers.get("Accept-Encoding", "")
    body = await request.app[SERVICE].status_page.read_html(links, compress=compress)
    return web.Response(body=body, headers=_status_headers("text/html; charset=utf-8", compress))


async def status_api(request: web.Request) -> web.Response:
    """``/api/v1/status``: the status page's data as JSON (README, "Status page")."""
    compress = "gzip" in request.headers.get("Accept-Encoding", "")
    body = await request.app[SERVICE].status_page.read_json(compress=compress)
    return web.Response(body=body, headers=_status_headers("application/json; charset=utf-8", compress))
