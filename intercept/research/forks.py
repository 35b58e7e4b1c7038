"""State that belongs to the process that made it: reset in every forked child.

The tallies of `intercept.research.counting.Counts` and the buffer of
`intercept.research.ledger.Ledger` are the parent's to hand over: a worker forked from the
supervisor (`intercept serve --workers N`) or by any other `os.fork` must start with none of
them, or the same counts would be handed over twice, and with fresh locks, since a lock held
by another thread at the fork stays held forever in the child.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import TypeVar

__all__ = ["reset_in_child"]

_T = TypeVar("_T")


def reset_in_child(owner: _T, reset: Callable[[_T], None]) -> None:
    """Call `reset(owner)` in every child forked from now on while `owner` lives.

    The hook holds `owner` by a weak reference: a fork hook can never be unregistered, and
    it must not keep alive an object that is otherwise dropped (each test makes its own)."""
    alive = weakref.ref(owner)

    def in_child() -> None:
        still = alive()
        if still is not None:
            reset(still)

    os.register_at_fork(after_in_child=in_child)
