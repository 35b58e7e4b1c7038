"""A worker asks its supervisor to reload with SIGHUP; never anyone else."""

from __future__ import annotations

import os
import signal

import pytest

from intercept import reload


def test_a_worker_whose_supervisor_is_gone_signals_nobody(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[tuple[int, int]] = []
    monkeypatch.setenv("INTERCEPT_WORKER", "1")
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))
    monkeypatch.setattr(reload, "_SUPERVISOR", [])
    reload.serve_as_worker_of(os.getppid() + 100_000)  # adopted since: the parent differs
    reload.notify_siblings()
    assert sent == []
    reload.serve_as_worker_of(os.getppid())
    reload.notify_siblings()
    assert sent == [(os.getppid(), signal.SIGHUP)]  # recorded, not sent: os.kill is replaced
