"""Render the status page: one HTML document with inline CSS, inline SVG charts and a small inline script.

It needs nothing else: no external assets, fonts or CDN, so it works offline and behind whatever
guards ``/metrics``. Without JavaScript it is complete and static (a ``<noscript>`` refresh reloads
it); with JavaScript it refreshes itself from ``/api/v1/status`` every poll interval. Each value
carries its ``/metrics`` series (``data-metric``, ``data-labels``) and exact value (``data-value``).

Colours meet WCAG AA: every text colour has a contrast ratio of at least 4.5 against the
backgrounds it sits on, and the chart line at least 3 (``tests/test_status_page.py`` checks it).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from html import escape
from importlib import metadata, resources

from exporter.serve.status.charts import HEIGHT, WIDTH, sparkline
from exporter.serve.status.view import Card, Figure, Source, StatusView, clock_text

PALETTE = {
    "light": {
        "bg": "#ffffff",
        "card": "#f4f6f9",
        "fg": "#1b1f24",
        "muted": "#4a5360",
        "border": "#c3cbd5",
        "link": "#0b57a4",
        "chart": "#0b57a4",
        "up": "#0f6b2f",
        "down": "#a3121f",
        "waiting": "#7a4a00",
    },
    "dark": {
        "bg": "#111418",
        "card": "#1b2027",
        "fg": "#e8ecf1",
        "muted": "#aab4c0",
        "border": "#3a434e",
        "link": "#8cc4ff",
        "chart": "#6cb2ff",
        "up": "#6fdc97",
        "down": "#ff9b9b",
        "waiting": "#f2c46d",
    },
}
"""Colours per scheme (the page follows the reader's ``prefers-color-scheme``)."""

TEXT_ON = {"fg": ("bg", "card"), "muted": ("bg", "card"), "link": ("bg",), "up": ("bg",), "down": ("bg",)}
TEXT_ON |= {"waiting": ("bg",)}
"""Which text colours are drawn on which backgrounds (for the contrast check)."""


def _variables(colours: dict[str, str]) -> str:
    return ":root{" + ";".join(f"--{name}:{value}" for name, value in colours.items()) + "}"


def _static(name: str) -> str:
    return resources.files("exporter.serve.status").joinpath("static", name).read_text(encoding="utf-8")


STYLE = (
    _variables(PALETTE["light"])
    + "@media (prefers-color-scheme:dark){"
    + _variables(PALETTE["dark"])
    + "}\n"
    + _static("status.css")
)
SCRIPT = _static("status.js")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src {_sha256(STYLE)}; script-src {_sha256(SCRIPT)}; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""Only the page's own inline style and script run, and it may only talk to this exporter."""


@dataclass(frozen=True, slots=True)
class Links:
    """Where the page's links point; paths are relative so the page works behind a path prefix."""

    metrics: str = "metrics"
    api: str = "api/v1/status"


@cache
def docs_url() -> str | None:
    """The project's documentation URL from the installed package's metadata, if it declares one."""
    try:
        urls = metadata.metadata("inference-throughput-exporter").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return None
    named = dict(tuple(part.strip() for part in url.split(",", 1)) for url in urls if "," in url)
    lowered = {name.lower(): url for name, url in named.items()}
    return next((lowered[n] for n in ("documentation", "homepage", "repository", "source") if n in lowered), None)


def render(view: StatusView, links: Links) -> str:
    """The whole page for one view."""
    return "".join(
        [
            _head(view),
            f'<body data-api="{escape(links.api)}" data-poll-interval="{view.settings.poll_interval:g}" '
            f'data-layout="{view.layout}" data-taken-at="{view.taken_at_unix!r}">',
            _header(view, links),
            "<main>",
            _sources(view.sources),
            _cost(view),
            _deployments(view),
            _cards("m", "Servers and models", view.models, view.slots, "No server has reported a model yet."),
            _cards(
                "g", "GPUs", view.gpus, view.slots, "No GPUs are read (GPU polling is off, or NVML is unavailable)."
            ),
            "</main>",
            _footer(view),
            f"<script>{SCRIPT}</script></body></html>",
        ]
    )


def _head(view: StatusView) -> str:
    refresh = max(5, round(view.settings.poll_interval))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark"><link rel="icon" href="data:,">'
        f"<title>Inference status · inference-throughput-exporter {escape(view.version)}</title>"
        f'<noscript><meta http-equiv="refresh" content="{refresh}"></noscript>'
        f"<style>{STYLE}</style></head>"
    )


def _header(view: StatusView, links: Links) -> str:
    iso = datetime.fromtimestamp(view.taken_at_unix, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return (
        "<header><h1>Inference status</h1>"
        f'<p class="meta">inference-throughput-exporter {escape(view.version)} · updated '
        f'<time id="taken-at" datetime="{iso}">{clock_text(view.taken_at_unix)}</time> · '
        f"rates over {view.settings.rate_window:g} s · "
        f'<span id="refresh-state">refreshes every {view.settings.poll_interval:g} s</span></p>'
        f"{_nav(links)}"
        f'<p id="summary" role="status">{escape(view.summary)}</p></header>'
    )


def _nav(links: Links) -> str:
    docs = docs_url()
    items = [
        f'<a href="{escape(links.metrics)}">Metrics</a>',
        f'<a href="{escape(links.api)}">Status as JSON</a>',
        f'<a href="{escape(docs)}">Documentation</a>' if docs else "Documentation: README.md of this release",
        f'<a href="{escape(docs)}#dashboards-and-alerts">Dashboards: how to import them</a>'
        if docs
        else "Dashboards: README.md, “Dashboards and alerts”",
    ]
    return '<nav aria-label="Links"><ul>' + "".join(f"<li>{item}</li>" for item in items) + "</ul></nav>"


def _sources(sources: Iterable[Source]) -> str:
    rows = "".join(
        f'<tr><th scope="row">{escape(s.name)}</th><td id="src-{i}-kind">{escape(s.kind)}</td>'
        f'<td id="src-{i}-state" class="state-{s.state}">{escape(s.display)}</td></tr>'
        for i, s in enumerate(sources)
    )
    return (
        '<section aria-labelledby="h-sources"><h2 id="h-sources">Sources</h2>'
        '<table><thead><tr><th scope="col">Source</th><th scope="col">Kind</th><th scope="col">State</th></tr>'
        f"</thead><tbody>{rows}</tbody></table></section>"
    )


def _cards(prefix: str, title: str, cards: tuple[Card, ...], slots: int, empty: str, *, lead: str = "") -> str:
    body = "".join(_card(f"{prefix}{i}", card, slots) for i, card in enumerate(cards)) if cards else f"<p>{empty}</p>"
    return (
        f'<section aria-labelledby="h-{prefix}"><h2 id="h-{prefix}">{title}</h2>{lead}'
        f'<div class="cards">{body}</div></section>'
    )


def _cost(view: StatusView) -> str:
    """The cost section: the node's cost per hour in one sentence, then the node's and each server's cards."""
    lead = f'<p id="cost-summary" class="lead">{escape(view.cost_summary)}</p>'
    return _cards("c", f"Cost ({escape(view.currency)})", view.cost, view.slots, "", lead=lead)


def _deployments(view: StatusView) -> str:
    """The deployments section, only where some are configured on this node."""
    if not view.deployments:
        return ""
    lead = (
        '<p class="lead">Each deployment as a whole: every request counted once (from its frontend, else its '
        "decode and engine servers), over all of its GPUs, prefill included.</p>"
    )
    return _cards("d", "Deployments", view.deployments, view.slots, "", lead=lead)


def _card(card_id: str, card: Card, slots: int) -> str:
    figures = "".join(_figure(f"{card_id}-{i}", figure, slots) for i, figure in enumerate(card.figures))
    return (
        f'<article class="card" aria-labelledby="{card_id}-title">'
        f'<h3 id="{card_id}-title">{escape(card.title)}</h3>'
        f'<p class="sub">{escape(card.subtitle)}</p>'
        f'<p class="note" id="{card_id}-note">{escape(card.note)}</p>'
        f"{_clocks(card_id, card) if 'gpu' in card.labels else ''}"
        f'<dl class="figs">{figures}</dl></article>'
    )


def _clocks(card_id: str, card: Card) -> str:
    css = "clocks throttled" if card.throttled else "clocks"
    return f'<p class="{css}" id="{card_id}-clocks">{escape(card.clocks)}</p>'


def _figure(figure_id: str, figure: Figure, slots: int) -> str:
    value = "" if figure.value is None else repr(figure.value)
    labels = escape(json.dumps(figure.labels, separators=(",", ":"), ensure_ascii=False))
    return (
        f'<div class="fig"><dt>{escape(figure.caption)}</dt><dd>'
        f'<span class="value" id="{figure_id}" data-metric="{figure.metric}" data-labels="{labels}" '
        f'data-value="{value}">{escape(figure.display)}</span>'
        f'<svg class="spark" id="{figure_id}-chart" viewBox="0 0 {WIDTH:g} {HEIGHT:g}" preserveAspectRatio="none" '
        f'role="img" aria-label="{escape(figure.range_display)}">'
        f'<path d="{sparkline(figure.history, slots)}"/></svg></dd></div>'
    )


def _footer(view: StatusView) -> str:
    dropped = (
        f" {view.dropped_series} further series are not charted (history limit reached)." if view.dropped_series else ""
    )
    return (
        f"<footer><p>Charts show the last {view.window_seconds / 60:g} minutes, one point per "
        f"{view.resolution_seconds:g} s, from 0 (or the lowest value) to the highest value. "
        f"A figure reads n/a where it is undefined (no requests or no tokens in the window, no GPUs attributed, "
        f"or its source is down); /metrics leaves those series out.{dropped}</p></footer>"
    )
