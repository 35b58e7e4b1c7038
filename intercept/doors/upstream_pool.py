"""Slots for requests to the upstream: a bounded pool with a share kept for search routes.

The reverse proxy relays at most `size` requests at a time (each holds one upstream
connection while it lasts). `size - search_reserved` of the slots are shared: every request
takes one of those while there is one. The other `search_reserved` slots are kept for
requests on search routes that find the shared ones taken; so a slow path that is not a
search route (result pages' assets, images, whatever else the front-end serves), however many
requests pile onto it, cannot make searches wait, and searches may still use the whole pool.
The caller says which kind of slot it asks for (`search` True: a reserved one, or a shared
one if any), and only when a shared one is not free does it need to know whether the
request is a search (the relay looks the route up only then).

Taking a free slot is one synchronous call (`take`); only a request that finds none waits
(`wait`), first come first served within its kind, and how long it may wait is the caller's
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
    """`size` slots, of which `size - search_reserved` are shared: slots of kind `search`
    False count against those; kind True (searches) may take any (see the module
    docstring)."""

    __slots__ = ("_others", "_searches", "in_use", "others_in_use", "shared", "size")

    def __init__(self, size: int, search_reserved: int) -> None:
        if not 0 <= search_reserved < size:
            raise ValueError("search_reserved must be at least 0 and below size")
        self.size = size
        self.shared = size - search_reserved
        self.in_use = 0
        self.others_in_use = 0  # shared slots in use (kind False)
        self._searches: deque[asyncio.Future[None]] = deque()  # waiting, kind True
        self._others: deque[asyncio.Future[None]] = deque()  # waiting, kind False

    def _free_for(self, search: bool) -> bool:
        return self.in_use < self.size and (search or self.others_in_use < self.shared)

    def take(self, search: bool) -> bool:
        """Take a slot of this kind if one is free and nobody waits for one of the kind;
        False: none taken (call `wait`, or `take(True)` for a search)."""
        if search:
            if self._searches or self.in_use >= self.size:
                return False
        else:
            if self._others or self.in_use >= self.size or self.others_in_use >= self.shared:
                return False
            self.others_in_use += 1
        self.in_use += 1
        return True

    async def wait(self, search: bool) -> None:
        """Wait for a slot, in turn; when this returns, the slot is held. Cancelling the
        wait gives up the turn (and a slot handed over in the meantime)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._searches if search else self._others
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
        searches first, since they may use slots the others may not. `search`: the kind it
        was taken as."""
        self.in_use -= 1
        if not search:
            self.others_in_use -= 1
        if self._searches or self._others:
            self._hand_over()

    def _hand_over(self) -> None:
        for kind, queue in ((True, self._searches), (False, self._others)):
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
        """Slots in use and requests waiting, by kind: for status pages and tests."""
        return {
            "size": self.size,
            "search_reserved": self.size - self.shared,
            "in_use": self.in_use,
            "others_in_use": self.others_in_use,
            "searches_waiting": len(self._searches),
            "others_waiting": len(self._others),
        }
