"""The HTTP endpoint: ``/metrics`` from pre-rendered bytes, a landing page, health and readiness.

State sits under typed ``web.AppKey``s; setup and teardown of the service run in ``cleanup_ctx``.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from exporter import __version__
from exporter.exposition.cache import Variant
from exporter.exposition.text import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE
from exporter.service import Service

SERVICE = web.AppKey("service", Service)


@dataclass(frozen=True, slots=True)
class WebSettings:
    """What the command line says about serving."""

    telemetry_path: str = "/metrics"


SETTINGS = web.AppKey("settings", WebSettings)


def build_app(service: Service, settings: WebSettings) -> web.Application:
    """The aiohttp application, with the service started and stopped by its cleanup context."""
    app = web.Application()
    app[SERVICE] = service
    app.cleanup_ctx.append(_service_lifecycle)
    app.router.add_get(settings.telemetry_path, metrics)
    app.router.add_get("/", landing)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app[SETTINGS] = settings
    return app


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
    """Serve the latest snapshot's bytes; no rendering, no I/O."""
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


async def landing(request: web.Request) -> web.Response:
    """A small page that links to the metrics."""
    path = html.escape(request.app[SETTINGS].telemetry_path)
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>inference-throughput-exporter</title>"
        "<meta name=viewport content='width=device-width,initial-scale=1'></head><body>"
        f"<h1>inference-throughput-exporter {html.escape(__version__)}</h1>"
        f"<p><a href='{path}'>Metrics</a> · <a href='/-/healthy'>Health</a> · <a href='/-/ready'>Ready</a></p>"
        "</body></html>"
    )
    return web.Response(text=body, content_type="text/html")
