"""Coverage-guided fuzzing of the exporter's untrusted-input edges with atheris (optional).

Each target feeds fuzzer bytes to one loader or parser and lets only its documented error through;
anything else is a crash that atheris reports with the input that caused it.

    pip install atheris                      # Linux wheels for CPython 3.11+
    mkdir -p /tmp/corpus && cp tests/fixtures/servers/*.prom /tmp/corpus
    python fuzz/fuzz_targets.py parsers -max_total_time=300 /tmp/corpus
    python fuzz/fuzz_targets.py config -runs=200000
    python fuzz/fuzz_targets.py webconfig -max_total_time=120
    python fuzz/fuzz_targets.py auth -max_total_time=60

Targets: ``parsers`` (every server adapter's ``parse`` and ``detect``), ``config`` (the YAML
configuration), ``webconfig`` (the exporter-toolkit web config and its TLS context), ``auth`` (the
``Authorization`` header). Arguments after the target go to libFuzzer. The parsers need a seed
corpus (the recorded bodies) to get past the first line quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports():
    from exporter.config import ConfigError, config_from_text
    from exporter.serve.security.auth import BasicAuth, parse_basic
    from exporter.serve.security.tls import server_context
    from exporter.serve.security.webconfig import web_config_from_text
    from exporter.sources.servers import ParseError, adapter_kinds, get_adapter

_AUTH = BasicAuth({"alice": "$2b$04$" + "a" * 53})


def _text(data: bytes) -> str:
    return atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(len(data))


def parsers(data: bytes) -> None:
    """Every adapter parses the body or raises ``ParseError``; detection never raises."""
    text = _text(data)
    for kind in adapter_kinds():
        adapter = get_adapter(kind)
        adapter.detect(text)
        with contextlib.suppress(ParseError):
            adapter.parse(text)


def config(data: bytes) -> None:
    """The configuration loads or raises ``ConfigError``."""
    with contextlib.suppress(ConfigError):
        config_from_text(_text(data), kinds=adapter_kinds())


def webconfig(data: bytes) -> None:
    """The web config loads (and builds its TLS context) or raises ``ConfigError``."""
    try:
        loaded = web_config_from_text(_text(data))
        if loaded.tls is not None:
            server_context(loaded.tls)
    except ConfigError:
        pass


def auth(data: bytes) -> None:
    """Any ``Authorization`` header gives credentials or ``None``, and a verdict."""
    header = _text(data)
    parse_basic(header)
    asyncio.run(_AUTH.check(header))


TARGETS: dict[str, Callable[[bytes], None]] = {
    "parsers": parsers,
    "config": config,
    "webconfig": webconfig,
    "auth": auth,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options]")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
