"""2 MiB pages under the loaded rule set, so that matching stops waiting on page-table walks.

A 50,000-rule set is a few hundred MB of small objects (the automaton's nodes, the rule
specs) reached in no particular order: with 4 KiB pages nearly every step of a match misses
the TLB. Measured with `bench/proxy_bench.py`: a deterrence page costs about 18 µs more with
50,000 rules than with 200, and that difference is gone with huge pages.

Linux only, and only what the kernel allows: `MADV_HUGEPAGE` marks the process's private
anonymous memory (its heap and its allocator's arenas) so that the kernel backs it with huge
pages where transparent huge pages are set to `madvise` (the usual default) or `always`;
`MADV_COLLAPSE` (Linux 6.1 and later) turns what is already there into huge pages at once
instead of waiting for the kernel's background scanner. Where either is refused (older
kernels, huge pages set to `never`, a container that forbids it) nothing changes and the
server runs as before. Nothing here reads or keeps anything about requests.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["HugePages", "advise_heap"]

HUGE_PAGE = 2 * 1024 * 1024
_MADV_HUGEPAGE = 14
_MADV_COLLAPSE = 25
_MAPS = Path("/proc/self/maps")


@dataclass(frozen=True, slots=True)
class HugePages:
    """What `advise_heap` did: bytes of memory marked for huge pages, and the bytes of the
    process's anonymous memory in huge pages afterwards (`AnonHugePages`)."""

    advised: int = 0
    huge: int = 0


def _anon_huge_bytes() -> int:
    try:
        text = Path("/proc/self/smaps_rollup").read_text(encoding="ascii")
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1]) * 1024
    return 0


_GUARD_MAX = 64 * 1024


def _regions(maps: str) -> list[tuple[int, int]]:
    """The 2 MiB-aligned parts of private, writable, anonymous mappings (and the heap) in
    a `/proc/<pid>/maps` text. Stacks are left alone: the main one by name, a thread's by the
    small inaccessible guard mapping right below it (huge pages there would only cost memory).
    """
    out: list[tuple[int, int]] = []
    below: tuple[int, str] = (-1, "")  # the previous mapping's end and permissions
    guard = False
    for line in maps.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        low_text, _, high_text = fields[0].partition("-")
        low, high = int(low_text, 16), int(high_text, 16)
        name = fields[5] if len(fields) > 5 else ""
        perms = fields[1]
        on_guard = guard and below[0] == low
        guard = perms == "---p" and high - low <= _GUARD_MAX
        below = (high, perms)
        if not perms.startswith("rw") or perms[3:4] != "p" or name not in ("", "[heap]"):
            continue
        if on_guard:
            continue  # a thread's stack
        start = -(-low // HUGE_PAGE) * HUGE_PAGE
        end = high // HUGE_PAGE * HUGE_PAGE
        if end - start >= HUGE_PAGE:
            out.append((start, end))
    return out


def advise_heap(collapse: bool = True) -> HugePages:
    """Ask for huge pages under the process's anonymous memory, and with `collapse` turn the
    memory in use now into huge pages (synchronously; about a second for a few hundred MB).
    Call it after a large load; never raises."""
    if sys.platform != "linux":
        return HugePages()
    try:
        maps = _MAPS.read_text(encoding="ascii")
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    except OSError:
        return HugePages()
    madvise = libc.madvise
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    madvise.restype = ctypes.c_int
    advised = 0
    for start, end in _regions(maps):
        if madvise(start, end - start, _MADV_HUGEPAGE) != 0:
            continue
        advised += end - start
        if collapse:
            madvise(start, end - start, _MADV_COLLAPSE)  # may turn only part of it
    return HugePages(advised, _anon_huge_bytes())
