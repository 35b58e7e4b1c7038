"""Slots for requests to the upstream: a bounded pool with a share kept for search routes.

The reverse proxy relays at most `size` requests at a time (each holds one upstream
connection while it lasts). Requests on routes that are not search routes (result pages'
assets, images, whatever else the front-end serves) may hold at most `size - search_reserved`
of them, so `search_reserved` slots are always left for searches: a slow non-search path,
however many requests pile onto it, cannot make searches wait. Searches may use the whole
pool when nothing else does.

Taking a free slot is one synchronous call (`take`); only a request that finds none waits
(`wait`), first come first served within its class, and how long it may wait is the caller's
business (the relay's pool deadline). A slot handed to a waiter that was cancelled meanwhile
goes back at once, so none is ever lost.

One instance per proxy worker, used from its event loop only (no locking).
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["EXTRAS_KEY", "UpstreamPool", "pool_of"]

EXTRAS_KEY = "upstream_pool"  # where the proxy keeps its UpstreamPool in `Engine.extras`


def pool_of(extras: dict[str, object]) -> UpstreamPool | None:
    """The reverse proxy's upstream pool in an engine's `extras`; None in other modes."""
    pool = extras.get(EXTRAS_KEY)
    return pool if isinstance(pool, UpstreamPool) else None


class UpstreamPool:
    """`size` slots, of which requests that are not searches hold at most
    `size - search_reserved` (see the module docstring)."""

    def __init__(self, size: int, search_reserved: int) -> None:
        if not 0 <= search_reserved < size:
            raise ValueError("search_reserved must be at least 0 and below size")
        self.size = size
        self.shared = size - search_reserved  # what requests other than searches may hold
        self.in_use = 0
        self.others_in_use = 0
        self._waiting: dict[bool, deque[asyncio.Future[None]]] = {True: deque(), False: deque()}

    def _free_for(self, search: bool) -> bool:
        return self.in_use < self.size and (search or self.others_in_use < self.shared)

    def take(self, search: bool) -> bool:
        """Take a slot if one is free for this class and nobody of the class waits for one;
        False: call `wait`."""
        if self._waiting[search] or not self._free_for(search):
            return False
        self._hold(search)
        return True

    async def wait(self, search: bool) -> None:
        """Wait for a slot, in turn; when this returns, the slot is held. Cancelling the
        wait gives up the turn (and a slot handed over in the meantime)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiting[search]
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give(search)  # handed over as the wait was cancelled: pass it on
            elif waiter in queue:  # `give` may have dropped it already
                queue.remove(waiter)
            raise

    def give(self, search: bool) -> None:
        """Give back a slot taken with `take` or `wait`, to the longest waiter it can serve:
        searches first, since they may use slots the others may not."""
        self.in_use -= 1
        if not search:
            self.others_in_use -= 1
        for kind in (True, False):
            queue = self._waiting[kind]
            while queue and self._free_for(kind):
                waiter = queue.popleft()
                if not waiter.done():
                    self._hold(kind)
                    waiter.set_result(None)

    def _hold(self, search: bool) -> None:
        self.in_use += 1
        if not search:
            self.others_in_use += 1

    def status(self) -> dict[str, int]:
        """Slots in use and requests waiting, by class: for status pages and tests."""
        return {
            "size": self.size,
            "search_reserved": self.size - self.shared,
            "in_use": self.in_use,
            "others_in_use": self.others_in_use,
            "searches_waiting": len(self._waiting[True]),
            "others_waiting": len(self._waiting[False]),
        }
