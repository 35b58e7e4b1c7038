"""Deadlines for relayed requests, enforced by one periodic sweep instead of a timer each.

A timer per request (`loop.call_later` and its cancel, or aiohttp's read timeout rescheduled on
every chunk) costs microseconds on the hot path and a heap operation per chunk. Here a request
sets its deadline with one dict write; a single task wakes every `tick` seconds and cancels the
tasks whose deadline has passed, marking them expired so the relay can tell a timeout from a
client that went away. A deadline fires at most `tick` late.
"""

from __future__ import annotations

import asyncio
import contextlib
import math

__all__ = ["Deadlines"]


class Deadlines:
    """Per-task deadlines on one event loop; `run()` is the sweeping task."""

    def __init__(self, tick: float = 0.1) -> None:
        self.tick = tick
        self._due: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def _now(self) -> float:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop.time()

    def set(self, task: asyncio.Task[object], seconds: float) -> None:
        """`task` is cancelled when it is still registered `seconds` from now."""
        self._due[task] = self._now() + seconds

    def hold(self, task: asyncio.Task[object]) -> None:
        """No deadline for now (while the task waits on something it does not time)."""
        self._due[task] = math.inf

    def clear(self, task: asyncio.Task[object]) -> bool:
        """Forget `task`; True when its deadline passed and the sweep cancelled it."""
        self._due.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def sweep(self) -> int:
        """Cancel every task whose deadline has passed; how many were."""
        now = self._now()
        late = [task for task, due in self._due.items() if due <= now]
        for task in late:
            del self._due[task]
            self._expired.add(task)
            task.cancel()
        return len(late)

    async def run(self) -> None:
        """Sweep every `tick` seconds until cancelled."""
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(self.tick)
                self.sweep()
