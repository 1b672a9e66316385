"""The command line: the only place that reads ``argv`` and the environment.

Flags follow the Prometheus dialect (``--config.file``, ``--web.listen-address``). Exit codes:
0 success, 1 runtime failure (such as a port already in use), 2 bad configuration or usage.
SIGHUP reloads the configuration; SIGINT and SIGTERM stop. Under systemd (``$NOTIFY_SOCKET``) the
exporter reports readiness, reloads and shutdown.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from aiohttp import web

from exporter import __version__
from exporter import logging as exporter_logging
from exporter.config import Config, ConfigError, load_config
from exporter.config.kubernetes import with_downward_api
from exporter.serve.sdnotify import Notifier
from exporter.serve.security.guard import WebSecurity
from exporter.serve.service import GpuFactory, Service, default_gpu_factory, gpu_source
from exporter.serve.web import WebSettings, build_app
from exporter.sources.servers import adapter_kinds

DEFAULT_PORT = 9842
DEFAULT_LISTEN = f":{DEFAULT_PORT}"
EXIT_RUNTIME, EXIT_CONFIG = 1, 2

log = structlog.get_logger("exporter.cli")


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--web.listen-address",
        dest="listen",
        default=default(DEFAULT_LISTEN),
        metavar="HOST:PORT",
        help=f"address to serve on (default {DEFAULT_LISTEN}, all interfaces)",
    )
    parser.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        default=default("/metrics"),
        metavar="PATH",
        help="path of the metrics (default /metrics)",
    )
    parser.add_argument(
        "--log.level",
        dest="log_level",
        default=default("info"),
        choices=exporter_logging.LEVELS,
        help="log level (default info)",
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        default=default("auto"),
        choices=("auto", "json", "console"),
        help="log format: json, console, or auto (console on a terminal, else json)",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        default=default(None),
        metavar="PATH",
        help="exporter-toolkit web config: TLS, mTLS, basic auth, headers (re-read when it changes)",
    )
    parser.add_argument(
        "--web.max-requests",
        dest="max_requests",
        type=int,
        default=default(40),
        metavar="N",
        help="requests handled at once; more get 503 at once (default 40, 0 for no limit)",
    )
    parser.add_argument(
        "--web.enable-lifecycle",
        dest="enable_lifecycle",
        action="store_true",
        default=default(False),
        help="accept POST /-/reload to re-read the configuration (SIGHUP always does)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with ``demo`` and ``inspect`` subcommands."""
    parser = argparse.ArgumentParser(
        prog="inference-throughput-exporter",
        description="Prometheus exporter for LLM inference servers and the NVIDIA GPUs they run on.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config.file", dest="config_file", metavar="PATH", help="YAML configuration file")
    parser.add_argument(
        "--config.check",
        dest="config_check",
        action="store_true",
        help="validate the configuration, print every problem, and exit",
    )
    parser.add_argument(
        "--gpu.simulate",
        dest="gpu_simulate",
        metavar="SCENARIO",
        help="read a simulated node instead of NVML (testing: h100x8, mig, xid, lost, old-driver, none)",
    )
    _common(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="{demo,inspect}")
    demo = commands.add_parser(
        "demo", help="run against a simulated 10× H100 node: vLLM, SGLang and a prefill/decode deployment"
    )
    demo.add_argument("--seed", type=int, default=1, help="varies the simulated load (default 1)")
    _common(demo, suppress=True)
    inspect = commands.add_parser("inspect", help="parse one /metrics body and print the normalized values")
    inspect.add_argument("source", help="a file, - for stdin, or an http(s) URL")
    kinds = adapter_kinds()
    inspect.add_argument(
        "--kind", default="auto", help=f"auto (detect; default), {', '.join(kinds[:-1])} or {kinds[-1]}"
    )
    inspect.add_argument("--timeout", type=float, default=5.0, help="seconds for a URL (default 5)")
    return parser


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """Where to serve: ``host`` ``None`` means every interface."""

    host: str | None
    port: int


def parse_listen_address(text: str) -> ListenAddress:
    """Parse ``:9842``, ``127.0.0.1:9842`` or ``[::1]:9842``; raise ``ValueError`` otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--web.listen-address {text!r}: expected HOST:PORT, such as :{DEFAULT_PORT}")
    host = host.removeprefix("[").removesuffix("]")
    return ListenAddress(host or None, int(port))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    exporter_logging.configure(args.log_level, args.log_format)
    if args.command == "inspect":
        from exporter.inspector import run_inspect

        return run_inspect(args.source, kind=args.kind, timeout=args.timeout)
    try:
        listen = parse_listen_address(args.listen)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    try:
        security = _web_security(args.web_config_file, args.max_requests)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    settings = WebSettings(
        telemetry_path=args.telemetry_path,
        enable_lifecycle=args.enable_lifecycle,
        max_requests=args.max_requests,
        security=security,
    )
    notifier = Notifier(os.environ.get("NOTIFY_SOCKET"))
    if args.command == "demo":
        return asyncio.run(_demo(args.seed, listen, settings, notifier))
    return _run(args, listen, settings, notifier)


def _web_security(path: str | None, max_requests: int) -> WebSecurity | None:
    """Load ``--web.config.file`` (raise ``ConfigError``) and check ``--web.max-requests``."""
    if max_requests < 0:
        raise ConfigError(["--web.max-requests: must be 0 (no limit) or more"], "command line")
    return WebSecurity(path) if path else None


def _run(args: argparse.Namespace, listen: ListenAddress, settings: WebSettings, notifier: Notifier) -> int:
    loader = functools.partial(_load_config, args.config_file)
    try:
        config = loader()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    if args.config_check:
        print(f"{args.config_file or '(defaults)'}: configuration is valid ({len(config.servers)} servers)")
        if settings.security is not None:
            print(f"{settings.security.path}: web config is valid ({settings.security.summary})")
        return 0
    gpu_factory = _simulated(args.gpu_simulate) if args.gpu_simulate else default_gpu_factory
    service = Service(config, gpu_factory=gpu_factory, config_loader=loader, notifier=notifier)
    return asyncio.run(serve(service, listen, settings))


def _load_config(path: str | None) -> Config:
    """The configuration as at start-up; every reload (SIGHUP, ``POST /-/reload``) reads it the same way.

    The exporter's own pod comes from the downward API (``POD_NAMESPACE``, ``POD_NAME``) where the file
    does not name it.
    """
    config = load_config(path, kinds=adapter_kinds()) if path else Config()
    return with_downward_api(config, os.environ)


def _simulated(scenario: str) -> GpuFactory:
    from exporter.fakes.nvml import SCENARIOS

    if scenario not in SCENARIOS:
        raise SystemExit(f"--gpu.simulate: unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})")
    nvml = SCENARIOS[scenario](time.monotonic)
    return lambda config: None if config.gpu.enabled == "false" else gpu_source(config, nvml)


async def serve(service: Service, listen: ListenAddress, settings: WebSettings, banner: str = "") -> int:
    """Serve until SIGINT or SIGTERM; in-flight scrapes finish before the exit."""
    runner = web.AppRunner(build_app(service, settings), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        ssl_context = settings.security.ssl_context if settings.security is not None else None
        site = web.TCPSite(runner, listen.host, listen.port, reuse_address=True, ssl_context=ssl_context)
        await site.start()
    except OSError as exc:
        log.error("cannot_listen", address=f"{listen.host or ''}:{listen.port}", error=exc.strerror or str(exc))
        await runner.cleanup()
        return EXIT_RUNTIME
    address = runner.addresses[0]
    log.info(
        "listening",
        address=f"{address[0]}:{address[1]}",
        path=settings.telemetry_path,
        servers=len(service.config.servers),
        tls=settings.security is not None and settings.security.tls,
    )
    if banner:
        print(banner.format(port=address[1]), flush=True)
    gc.freeze()  # what start-up made lives as long as the process: no collection need walk it again
    service.notifier.ready(service.status_line())
    await _wait_for_signal(service)
    log.info("shutting_down")
    service.notifier.stopping()
    await runner.cleanup()
    return 0


async def _wait_for_signal(service: Service) -> None:
    """Return on SIGINT or SIGTERM; reload the configuration on each SIGHUP meanwhile."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[object]] = set()

    def reload() -> None:
        if stop.is_set():
            return
        log.info("sighup_received")
        task = loop.create_task(service.reload(), name="reload")
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    await stop.wait()
    if reloads:
        await asyncio.wait(reloads)


async def _demo(seed: int, listen: ListenAddress, settings: WebSettings, notifier: Notifier | None = None) -> int:
    from exporter.demo import start_demo_node

    node = await start_demo_node(seed)
    if listen.host is None and listen.port == DEFAULT_PORT:
        listen = ListenAddress("127.0.0.1", DEFAULT_PORT)
    service = Service(node.config, gpu_factory=node.gpu_factory, notifier=notifier)
    banner = (
        "Demo running: open http://127.0.0.1:{port}/ for the status page, "
        f"http://127.0.0.1:{{port}}{settings.telemetry_path} for the metrics (Ctrl-C to stop)"
    )
    try:
        return await serve(service, listen, settings, banner)
    finally:
        await node.close()
