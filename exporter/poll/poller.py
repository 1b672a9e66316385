"""The loops: poll every source on its interval, survive every failure, publish composed snapshots.

Each server poll runs concurrently with the others, bounded by its own timeout. The GPUs have two
loops (``gpus``: fast values each second, slow ones every few seconds, NVML in worker threads), and
the kubelet a third where Kubernetes attribution is on. Every iteration of every loop runs inside
the ``Supervisor``'s guard: an unexpected error is logged, counted and survived, and what the loop
owns is marked down rather than left frozen as up. A failing source never raises out of here: it
becomes ``up 0`` with its reason, and the other sources carry on.

Publishing is a loop of its own: each source loop marks the state changed, and the publish loop
composes one snapshot (``compose``) for whatever changed and hands it to ``publish``, which renders
it for scrapes. Loops that run together publish once: the publish loop waits until no loop is in
the middle of an iteration (at most half the shortest interval), so a 1 s server poll and the 1 s
GPU loop make one snapshot a second, not two.

The loops share the event loop with the scrapes, so no step of theirs holds it long: a poll round
sends one request per turn of the loop (a few for a large fleet), and the servers' bodies are parsed
one at a time, each in a turn of its own (``reader.Turns``).

Clocks are injected: ``clock`` (monotonic seconds, for rates) and ``wall`` (unix seconds, for
timestamps), so tests drive the loops' iterations (``poll_servers``, ``poll_gpus_fast``,
``poll_gpus_slow``, ``refresh_kubelet``, ``publish_now``) in virtual time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import structlog

from exporter.attribution.attributor import Attributor
from exporter.config import Config
from exporter.model import Snapshot
from exporter.poll import compose
from exporter.poll.gpus import GpuPoller
from exporter.poll.servers import ServerState, poll_server, states_for
from exporter.poll.supervise import OnFailure, Supervisor
from exporter.sources.gpu import GpuSource
from exporter.sources.upstream.reader import Turns

log = structlog.get_logger("exporter.poll")

Publish = Callable[[Snapshot], Awaitable[None]]
"""Makes a composed snapshot the one served."""
START_TURNS = 128
"""A poll round sends its requests over about this many turns of the event loop (see ``start_batch``)."""


def start_batch(servers: int) -> int:
    """How many polls a round starts per turn of the event loop: one, or more for a large fleet.

    One per turn keeps every turn short (sending a request takes about 0.2 ms), but each turn may
    also take a parse, so with hundreds of servers the last requests would go out long after the
    first. Spreading the starts over ``START_TURNS`` turns bounds both: 64 servers start one per
    turn, 1,000 eight per turn.
    """
    return max(1, -(-servers // START_TURNS))


def _nothing(_reason: str) -> None:
    """A loop that owns no source marks nothing down."""


async def _discard(_snapshot: Snapshot) -> None:
    """Publish nowhere (a poller whose snapshots are read with ``snapshot``)."""


@dataclass(frozen=True, slots=True)
class _Loop:
    name: str
    """As the ``loop`` label of ``inference_exporter_loop_errors_total`` says it."""
    interval: float
    body: Callable[[], Awaitable[object]]
    """One iteration."""
    on_failure: OnFailure = _nothing
    """Marks what the loop owns down when an iteration fails."""


class Poller:
    """Owns the sources' state; ``run`` polls and publishes forever, ``snapshot`` composes the current state."""

    def __init__(
        self,
        config: Config,
        *,
        session: aiohttp.ClientSession,
        gpu_source: GpuSource | None,
        publish: Publish = _discard,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        attributor: Attributor | None = None,
    ) -> None:
        self.config = config
        self._clock, self._wall, self._publish = clock, wall, publish
        self._session = session
        self._turns = Turns()
        self._servers = states_for(config, session, turns=self._turns)
        self._gpu = GpuPoller(gpu_source, config, clock=clock, wall=wall) if gpu_source is not None else None
        self._attributor = attributor or Attributor(config, wall=wall)
        self.supervisor = Supervisor()
        self.supervisor.register(["publish", *(loop.name for loop in self._loops())])
        self.missed_polls = 0
        self._changed = asyncio.Event()
        self._in_flight = 0
        """Loop iterations running now; the publish loop waits for them to end."""
        self._idle = asyncio.Event()
        self._idle.set()

    # -- loops ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll servers, GPUs (fast and slow) and the kubelet on their intervals, and publish, until cancelled."""
        start = self._clock()  # one schedule for all: loops due together start in the same turn
        async with asyncio.TaskGroup() as group:
            group.create_task(self._publisher(), name="publish")
            for loop in self._loops():
                group.create_task(self._every(loop, start), name=loop.name)

    def _loops(self) -> list[_Loop]:
        config = self.config
        loops = [_Loop("servers", config.poll_interval, self.poll_servers, self._servers_failed)]
        if self._gpu is not None:
            loops.append(_Loop("gpu_fast", config.gpu.fast_interval, self.poll_gpus_fast, self._gpu.failed))
            loops.append(_Loop("gpu_slow", config.gpu.slow_interval, self.poll_gpus_slow))
        if self._attributor.wants_kubelet:
            interval = config.kubernetes.refresh_interval
            loops.append(_Loop("kubelet", interval, self.refresh_kubelet, self._attributor.kubelet_failed))
        return loops

    async def _every(self, loop: _Loop, due: float) -> None:
        while True:
            self._in_flight += 1
            self._idle.clear()
            try:
                await self.supervisor.iteration(loop.name, loop.body, loop.on_failure)
            finally:
                self._in_flight -= 1
                if not self._in_flight:
                    self._idle.set()
            self._changed.set()
            due += loop.interval
            now = self._clock()
            while due <= now:
                due += loop.interval
                self.missed_polls += 1
            await asyncio.sleep(due - now)

    async def _publisher(self) -> None:
        while True:
            await self._changed.wait()
            await self._settled()
            self._changed.clear()
            await self.supervisor.iteration("publish", self.publish_now, self._publish_degraded)

    async def _settled(self) -> None:
        """Wait until no loop is in the middle of an iteration, at most half the shortest interval."""
        limit = min(loop.interval for loop in self._loops()) / 2
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                await self._idle.wait()

    # -- iterations ----------------------------------------------------------------------------

    async def poll_servers(self) -> None:
        """One iteration of the server loop: poll every server once, concurrently.

        ``start_batch`` polls start per turn of the event loop: starting hundreds in one turn would
        hold the loop (and any scrape waiting for it) for as long as sending all their requests takes.
        """
        span = self.config.rate_window
        batch = start_batch(len(self._servers))
        polls: list[asyncio.Task[None]] = []
        try:
            for state in self._servers.values():
                polls.append(asyncio.create_task(poll_server(state, span, self._clock, self._wall)))
                if len(polls) % batch == 0:
                    await asyncio.sleep(0)
            results = await asyncio.gather(*polls, return_exceptions=True)
        except BaseException:  # cancelled (stop, reload) while starting: stop the polls started
            for poll in polls:
                poll.cancel()
            raise
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _servers_failed(self, reason: str) -> None:
        for state in self._servers.values():
            state.failed(f"internal error in the server loop ({reason}); see the exporter's log", 0.0)

    async def poll_gpus_fast(self) -> None:
        """One iteration of the fast GPU loop: utilization, power, energy, clocks."""
        if self._gpu is not None:
            await self._gpu.poll_fast()

    async def poll_gpus_slow(self) -> None:
        """One iteration of the slow GPU loop: processes, ECC, power limit, MIG layout; then local attribution."""
        if self._gpu is None:
            return
        reading = await self._gpu.poll_slow()
        if reading is not None and self._attributor.wants_local:
            await asyncio.to_thread(self._attributor.refresh_local, reading)
        self._attributor.note_changes(self._attributor.attributions(self._gpu.reading))

    async def refresh_kubelet(self) -> None:
        """One iteration of the kubelet loop: which pods hold which GPUs (in a thread; snapshots read the answer)."""
        await asyncio.to_thread(self._attributor.refresh_kubelet)
        self._attributor.note_changes(self._attributor.attributions(self._gpu.reading if self._gpu else None))

    async def publish_now(self) -> None:
        """One iteration of the publish loop: compose the current state and hand it to ``publish``."""
        inputs = self.inputs()  # in one step: the loops may change their state at the next
        await asyncio.sleep(0)
        snapshot = compose.compose(inputs)
        await asyncio.sleep(0)
        await self._publish(snapshot)

    async def _publish_degraded(self, reason: str) -> None:
        await self._publish(compose.degraded(self.inputs(), reason))

    # -- reload --------------------------------------------------------------------------------

    def reconfigure(self, config: Config, gpu_source: GpuSource | None) -> None:
        """Take a new configuration between runs of ``run`` (see ``servers.states_for``).

        The GPU state is kept unless ``gpu_source`` is a different source.
        """
        self._servers = states_for(config, self._session, self._servers, turns=self._turns)
        self.config = config
        if gpu_source is not (self._gpu.source if self._gpu is not None else None):
            self._gpu = (
                GpuPoller(gpu_source, config, clock=self._clock, wall=self._wall) if gpu_source is not None else None
            )
        elif self._gpu is not None:
            self._gpu.config = config
        self._attributor.reconfigure(config)
        self.supervisor.register([loop.name for loop in self._loops()])

    # -- snapshot ------------------------------------------------------------------------------

    def inputs(self) -> compose.Inputs:
        """The current state, as ``compose`` reads it."""
        gpus = self._gpu.state() if self._gpu is not None else None
        reading = gpus.reading if gpus is not None else None
        return compose.Inputs(
            taken_at_unix=self._wall(),
            servers=[_input(state) for state in self._servers.values()],
            attributions=self._attributor.attributions(reading),
            pricing=self.config.pricing,
            gpus=gpus,
            ready=self.ready,
            gpu_owners=self._attributor.owners(reading),
            kubelet=self._attributor.kubelet_status,
            missed_polls=self.missed_polls,
            loop_errors=tuple(sorted(self.supervisor.errors.items())),
            deployments=self.config.deployments,
            peak_flops=self.config.gpu.peak_flops,
        )

    def snapshot(self) -> Snapshot:
        """Compose the current state: attribution, rates, cost and energy, per server and GPU."""
        return compose.compose(self.inputs())

    @property
    def ready(self) -> bool:
        """True once every source has been polled at least once."""
        gpu_done = self._gpu is None or self._gpu.polled
        return gpu_done and all(state.polled for state in self._servers.values())


def _input(state: ServerState) -> compose.ServerInput:
    config = state.config
    return compose.ServerInput(
        state.name,
        state.status,
        state.sample,
        dict(state.windows),
        state.activity,
        deployment=config.deployment or "",
        role=config.role,
    )
