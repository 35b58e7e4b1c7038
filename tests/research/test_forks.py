"""`reset_in_child`: a forked child starts without its parent's counts, and the fork hook
keeps nothing alive. (The tallies of `Counts` are checked in `test_counting.py`.)"""

from __future__ import annotations

import gc
import os
import weakref
from pathlib import Path

from intercept.research.forks import reset_in_child
from intercept.research.ledger import Ledger


def test_a_forked_child_starts_with_an_empty_ledger_buffer_and_a_free_lock(
    tmp_path: Path,
) -> None:
    """The parent writes what it buffered; a child forked while another thread held the
    buffer's lock can still count."""
    ledger = Ledger.from_url(f"sqlite:{tmp_path / 'ledger.db'}")
    try:
        ledger.add_search("search", 3)
        ledger._lock.acquire()  # as if another thread held it at the moment of the fork
        pid = os.fork()
        if pid == 0:  # the child: exit status tells the parent what it found
            if not ledger._lock.acquire(timeout=1):
                os._exit(2)
            ledger._lock.release()
            empty = ledger.status.pending == 0
            ledger.add_search("search")
            os._exit(0 if empty and ledger.status.pending == 1 else 1)
        ledger._lock.release()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert ledger.status.pending == 3  # the parent's buffer, untouched
    finally:
        ledger.close()


class _Owner:
    def __init__(self) -> None:
        self.state = [1, 2, 3]

    def clear(self) -> None:
        self.state = []


def test_the_reset_runs_in_the_child_only_and_keeps_no_owner_alive() -> None:
    owner = _Owner()
    reset_in_child(owner, _Owner.clear)
    pid = os.fork()
    if pid == 0:
        os._exit(0 if owner.state == [] else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert owner.state == [1, 2, 3]
    gone = weakref.ref(owner)
    del owner
    gc.collect()
    assert gone() is None
