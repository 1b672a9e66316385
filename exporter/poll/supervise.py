"""The guard every loop iteration runs in, in the spirit of node_exporter's ``execute()``.

An iteration that raises is logged once when its loop starts failing (with the traceback), at debug
level while it keeps failing, and at info level when it recovers; it is counted per loop
(``inference_exporter_loop_errors_total{loop}``), the loop's ``on_failure`` marks what it owns down,
and the loop carries on. Cancellation (stop, reload) always goes through.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger("exporter.poll")

LOOPS = ("servers", "gpu_fast", "gpu_slow", "kubelet", "publish")
"""Every loop's name, as the ``loop`` label says it."""

OnFailure = Callable[[str], Awaitable[None] | None]
"""Marks what a loop owns down, given the reason; may be a coroutine function (publishing a degraded snapshot)."""


def _nothing(_reason: str) -> None:
    """A loop that owns no source marks nothing down."""


def describe(exc: BaseException) -> str:
    """One line for an unexpected exception: its type and message."""
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Supervisor:
    """Counts and logs the failed iterations of every loop; the counts survive reloads."""

    def __init__(self) -> None:
        self.errors: dict[str, int] = {}
        """Failed iterations per loop, for every loop that has run (0 until one fails)."""
        self._failing: dict[str, str] = {}

    def register(self, loops: list[str]) -> None:
        """Count the given loops from zero, so each has a series before its first failure."""
        for loop in loops:
            self.errors.setdefault(loop, 0)

    def failing(self, loop: str) -> str | None:
        """Why the loop's last iteration failed, ``None`` when it succeeded."""
        return self._failing.get(loop)

    async def iteration(
        self,
        loop: str,
        body: Callable[[], Awaitable[object]],
        on_failure: OnFailure = _nothing,
    ) -> bool:
        """Run one iteration of ``loop``; ``False`` (after ``on_failure(reason)``) when it raised."""
        self.errors.setdefault(loop, 0)
        try:
            await body()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._failed(loop, exc, on_failure)
            return False
        if self._failing.pop(loop, None) is not None:
            log.info("loop_recovered", loop=loop)
        return True

    async def _failed(self, loop: str, exc: Exception, on_failure: OnFailure) -> None:
        reason = describe(exc)
        self.errors[loop] += 1
        if loop in self._failing:
            log.debug("loop_still_failing", loop=loop, error=reason)
        else:
            log.error("loop_failed", loop=loop, error=reason, exc_info=exc)
        self._failing[loop] = reason
        try:
            marked = on_failure(reason)
            if inspect.isawaitable(marked):
                await marked
        except asyncio.CancelledError:
            raise
        except Exception:  # marking down must never take the loop with it
            log.exception("loop_failure_handler_crashed", loop=loop)
