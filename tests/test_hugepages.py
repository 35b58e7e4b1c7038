"""Huge pages under the loaded rule set (`intercept.hugepages`), on this machine's kernel."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from intercept.config import load_config
from intercept.hugepages import HUGE_PAGE, _regions, advise_heap
from intercept.server.serve import settle_pages

MAPS = """\
55d4a0000000-55d4a0400000 r--p 00000000 fd:01 1234   /usr/bin/python3.11
55d4a0400000-55d4a2a00000 rw-p 00000000 00:00 0      [heap]
7f0000100000-7f0000900000 rw-p 00000000 00:00 0
7f0000900000-7f0000a00000 rw-p 00000000 00:00 0
7f0000a00000-7f0001000000 rw-s 00000000 00:05 99     /dev/shm/x
7f0001000000-7f0001400000 rw-p 00000000 fd:01 555    /usr/lib/libc.so.6
7f0001400000-7f0001c00000 r--p 00000000 00:00 0
7f0001c00000-7f0001c01000 ---p 00000000 00:00 0
7f0001c01000-7f0002401000 rw-p 00000000 00:00 0
7f0002401000-7f0002600000 ---p 00000000 00:00 0
7f0002600000-7f0002a00000 rw-p 00000000 00:00 0
7ffc00000000-7ffc00800000 rw-p 00000000 00:00 0      [stack]
"""


def test_only_private_writable_anonymous_memory_is_chosen_in_whole_huge_pages() -> None:
    assert _regions(MAPS) == [
        (0x55D4A0400000, 0x55D4A2A00000),  # the heap, already aligned
        (0x7F0000200000, 0x7F0000800000),  # an arena, trimmed to whole 2 MiB pages
        (0x7F0002600000, 0x7F0002A00000),  # behind a large reserve: an arena, not a stack
    ]  # too small once aligned, shared, file-backed, read-only, a thread's stack above its
    # guard page, and the main stack: left alone


def _thp_mode() -> str:
    path = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    text = path.read_text() if path.exists() else "[never]"
    return text.split("[", 1)[1].split("]", 1)[0]


@pytest.mark.skipif(sys.platform != "linux", reason="huge pages are asked of Linux only")
def test_loaded_memory_ends_up_in_huge_pages() -> None:
    if _thp_mode() == "never":
        pytest.skip("transparent huge pages are off on this kernel ('never')")
    import platform

    major, minor = (int(part) for part in platform.release().split(".")[:2])
    if (major, minor) < (6, 1):
        pytest.skip(f"MADV_COLLAPSE needs Linux 6.1 (this is {platform.release()})")
    loaded = [bytes([i % 256]) * 4000 for i in range(16_000)]  # ~64 MB, like a rule set
    done = advise_heap()
    assert done.advised >= 32 * HUGE_PAGE
    assert done.huge >= 16 * HUGE_PAGE
    assert len(loaded) == 16_000


def test_huge_pages_off_asks_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    asked: list[bool] = []
    monkeypatch.setattr("intercept.server.serve.advise_heap", lambda: asked.append(True))
    settle_pages(load_config(None, environ={}, overrides={"huge_pages": False}))
    assert asked == []
    assert "huge pages" not in caplog.text
