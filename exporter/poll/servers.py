"""Each configured server's state between polls: its reader, status, last sample and rate windows.

``poll_server`` polls one server and never raises: a failure of any kind, an adapter or derive bug
included, makes that server ``up 0`` with its reason while the others carry on. A server going down
or coming back is logged once; a repeat is debug.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import aiohttp
import structlog

from exporter import derive, economics
from exporter.config import Config, ServerConfig
from exporter.model import NOT_POLLED, ServerSample, SourceStatus
from exporter.poll.supervise import describe
from exporter.sources.upstream.fetch import UpstreamError
from exporter.sources.upstream.reader import ServerReader, Turns

log = structlog.get_logger("exporter.poll")


WORKER = SourceStatus(up=False, duration_seconds=0.0, last_success_unix=None, error="a worker: no /metrics to poll")
"""The status of a ``role: worker`` entry, which is GPUs of a deployment and is never polled."""


@dataclass
class ServerState:
    """One server's state, kept across polls (and across reloads that leave its endpoint as it was)."""

    config: ServerConfig
    reader: ServerReader | None
    """``None`` for a worker, which is never polled."""
    status: SourceStatus = NOT_POLLED
    sample: ServerSample | None = None
    """The last good sample; ``None`` while the server is down."""
    windows: dict[str, derive.ModelWindows] = field(default_factory=dict)
    activity: economics.Activity = field(default_factory=economics.Activity)
    """The server's idle time, poll by poll."""
    polled: bool = False

    @property
    def name(self) -> str:
        """The server's configured name."""
        return self.config.name

    def failed(self, error: str, duration: float) -> None:
        """Mark the server down with ``error``; its series are dropped until a poll succeeds."""
        if self.status.up or not self.polled:
            log.warning("server_down", server=self.name, error=error)
        else:
            log.debug("server_still_down", server=self.name, error=error)
        self.status = SourceStatus(False, duration, self.status.last_success_unix, error)
        self.sample = None
        self.polled = True

    def succeeded(self, sample: ServerSample, now: float, duration: float, wall: float, span: float) -> None:
        """Take a good sample taken at monotonic ``now``: feed the rate windows, mark the server up."""
        if not self.status.up:
            log.info("server_up", server=self.name, kind=sample.kind, models=len(sample.models))
        restarted = _restarted(self.sample, sample)
        self.windows = {
            model: derive.observe_model(self.windows.get(model, derive.ModelWindows()), now, values, span, restarted)
            for model, values in sample.models.items()
        }
        self.activity = economics.observe_activity(self.activity, now, sample, span, restarted)
        self.sample = sample
        self.status = SourceStatus(True, duration, wall, None)
        self.polled = True


async def poll_server(
    state: ServerState, span: float, clock: Callable[[], float], wall: Callable[[], float] = time.time
) -> None:
    """Poll one server and update its state; never raises (but on cancellation). A worker is skipped."""
    if state.reader is None:
        return
    started = clock()
    try:
        sample = await state.reader.poll()
        state.succeeded(sample, clock(), clock() - started, wall(), span)
    except UpstreamError as exc:
        state.failed(str(exc), clock() - started)
    except Exception as exc:  # an adapter or derive bug must not stop the others
        log.exception("server_poll_crashed", server=state.name)
        state.failed(f"internal error: {describe(exc)}", clock() - started)


def reader_for(
    server: ServerConfig, config: Config, session: aiohttp.ClientSession, turns: Turns | None = None
) -> ServerReader:
    """The reader of one server under ``config``'s body and series caps, parsing in ``turns``."""
    return ServerReader(
        server, session, max_body_bytes=config.max_body_bytes, max_series=config.max_series_per_server, turns=turns
    )


def states_for(
    config: Config,
    session: aiohttp.ClientSession,
    previous: Mapping[str, ServerState] | None = None,
    turns: Turns | None = None,
) -> dict[str, ServerState]:
    """The servers' states under ``config``.

    A server whose name, URL and kind are unchanged keeps its state and rate windows (its other
    settings apply from the next poll); others start afresh, and removed ones are forgotten, so their
    series disappear. The readers share ``turns`` (see ``reader.Turns``).
    """
    states: dict[str, ServerState] = {}
    for server in config.servers:
        state = (previous or {}).get(server.name)
        reader = reader_for(server, config, session, turns) if server.polled else None
        if state is not None and _same_target(state.config, server):
            state.config, state.reader = server, reader
        else:
            state = ServerState(server, reader) if server.polled else ServerState(server, None, WORKER, polled=True)
        states[server.name] = state
    return states


def _same_target(old: ServerConfig, new: ServerConfig) -> bool:
    """True when a reload points a server at the same endpoint, so its rate windows stay valid."""
    return (old.url, old.kind, old.role) == (new.url, new.kind, new.role)


def _restarted(previous: ServerSample | None, current: ServerSample) -> bool | None:
    """True/False when both samples carry the process start time, else ``None`` (infer from counters)."""
    if previous is None or previous.process_start_time_seconds is None:
        return None
    if current.process_start_time_seconds is None:
        return None
    return current.process_start_time_seconds != previous.process_start_time_seconds
