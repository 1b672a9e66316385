"""Runbook links: every alert's ``runbook_url`` is an absolute URL built from one pattern.

The pattern is ``<base>#%s``, ``%s`` standing for the alert name in lower case (the anchor of its
section in ``docs/runbooks.md``), as monitoring mixins spell it (``runbookURLPattern``). The base is
``runbook_url`` in ``rules/settings.yml`` when set, and otherwise ``docs/runbooks.md`` on the
project's home page, which is set once: ``Homepage`` under ``[project.urls]`` in ``pyproject.toml``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from rules.settings import Settings

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
RUNBOOKS_PAGE = "blob/main/docs/runbooks.md"
"""Where docs/runbooks.md is shown on the home page (a Git forge's file view of the main branch)."""


def homepage(pyproject: Path = PYPROJECT) -> str:
    """The project's home page: ``[project.urls] Homepage`` of ``pyproject.toml``."""
    with pyproject.open("rb") as file:
        urls = tomllib.load(file).get("project", {}).get("urls", {})
    url = urls.get("Homepage")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise ValueError(f"{pyproject}: [project.urls] Homepage must be an http(s) URL, not {url!r}")
    return url.rstrip("/")


def runbook_base(settings: Settings) -> str:
    """The page that holds the runbooks: the settings' ``runbook_url``, or the project's own."""
    return settings.runbook_url or f"{homepage()}/{RUNBOOKS_PAGE}"


def runbook_url_pattern(settings: Settings) -> str:
    """``<runbook page>#%s``: ``%s`` is the alert name in lower case."""
    return runbook_base(settings) + "#%s"


def runbook_url(settings: Settings, alert: str) -> str:
    """The absolute link to the runbook of ``alert``."""
    return runbook_url_pattern(settings).replace("%s", alert.lower())
