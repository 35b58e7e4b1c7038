"""`/admin/status` of `intercept serve --workers 2` is one view of the replica: whichever worker
takes the connection lists every living worker with its pid, rule set version, start time and
last reload, and after a reload every worker listed serves the new set, loaded later than the
old one, and says it is current. The real server on loopback (about 4 seconds); then the
`current` flag's three states from the files a supervisor writes (milliseconds)."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from intercept import served
from tests.server.test_worker_reloads import TOKEN, _post_reload
from tests.server.test_workers import ROOT, Server, _rules, _settled, _write, serving

ASKS = 100  # the most /admin/status requests spent waiting for every worker to answer one


def _status(server: Server) -> dict[str, Any]:
    """`/admin/status` over a new connection: the kernel hands it to either worker."""
    request = urllib.request.Request(
        f"http://{server.admin}/admin/status", headers={"Connection": "close"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        answer: dict[str, Any] = json.loads(reply.read())
        return answer


def _from_every_worker(server: Server) -> list[dict[str, Any]]:
    """Answers to `/admin/status`, asked until every living worker has answered at least once
    (at most `ASKS` requests)."""
    living, answers = server.workers(), []
    for _ in range(ASKS):
        answers.append(_status(server))
        if {answer["pid"] for answer in answers} >= living:
            return answers
    raise AssertionError(f"not every worker of {living} answered in {ASKS} requests")


def _check_lists_every_worker(server: Server, answer: dict[str, Any], version: str) -> None:
    """`answer` lists exactly the living workers, each serving `version` and current."""
    listed = answer["workers"]
    assert {entry["pid"] for entry in listed} == server.workers(), listed
    for entry in listed:
        assert entry["version"] == version, entry
        assert entry["draining"] is False, entry
        reload = entry["last_reload"]
        assert reload["at"] == entry["loaded_at"], entry
        assert reload["current"] is True, entry
        assert 0 <= reload["age_seconds"] < 60, entry
        assert entry["started_at"] >= entry["loaded_at"], entry  # forked from a loaded set


def test_whichever_worker_answers_lists_every_worker_and_its_last_reload(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    _write(folder, _rules("alpha one"))
    args = ["--mode", "authz", "--rules", str(folder), "--messages", str(ROOT / "messages")]
    with serving(*args, env={"INTERCEPT_ADMIN__RELOAD_TOKEN": TOKEN}) as server:
        before = _from_every_worker(server)
        first = before[0]["rules"]["version"]
        for answer in before:
            _check_lists_every_worker(server, answer, first)
        old_pids = server.workers()
        loaded_before = max(e["loaded_at"] for a in before for e in a["workers"])

        _write(folder, _rules("alpha one", "beta two"))
        result = _post_reload(server)
        assert result["ok"] is True, result
        second = str(result["version"])
        assert second != first
        _settled(server)  # the retired workers have ended

        after = _from_every_worker(server)
        assert server.workers().isdisjoint(old_pids)  # every worker re-forked
        for answer in after:
            assert answer["rules"]["version"] == second, answer["rules"]
            _check_lists_every_worker(server, answer, second)
            assert all(e["loaded_at"] > loaded_before for e in answer["workers"]), answer
        assert {answer["pid"] for answer in after} == server.workers()
        server.stop()


# --- `current`, from the files alone --------------------------------------------------------------


@pytest.fixture
def supervised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The environment of a worker of `--workers N`, with its served folder at the returned
    path: two living "workers", this process (version "new") and its parent (version "old")."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv("INTERCEPT_WORKER", "1")
    folder = tmp_path / "served"
    folder.mkdir()
    for pid, version in ((os.getpid(), "new"), (os.getppid(), "old")):
        entry = {"pid": pid, "version": version, "rules": 2, "loaded_at": time.time() - 5,
                 "draining": False, "started_at": time.time() - 4}  # fmt: skip
        (folder / f"{pid}.json").write_text(json.dumps(entry), encoding="utf-8")
    return folder


def _current(folder: Path, state: dict[str, Any] | None) -> dict[str, bool | None]:
    """Each listed version's `current`, with `state` as the supervisor's `reload.state`."""
    if state is not None:
        (folder / "reload.state").write_text(json.dumps(state), encoding="utf-8")
    listed = served.workers()
    assert listed is not None
    for entry in listed:
        assert 4.5 <= entry["last_reload"]["age_seconds"] < 60
    return {entry["version"]: entry["last_reload"]["current"] for entry in listed}


def test_current_says_which_worker_is_behind(supervised: Path) -> None:
    assert _current(supervised, None) == {"new": True, "old": True}  # no reload since start
    rolling = {"generation": 1, "finished": False, "version": "old"}
    assert _current(supervised, rolling) == {"new": None, "old": None}
    behind = {"generation": 1, "finished": True, "ok": False, "version": "new", "behind": 1}
    assert _current(supervised, behind) == {"new": True, "old": False}
    refused = {"generation": 2, "finished": True, "ok": False, "version": "old"}
    assert _current(supervised, refused) == {"new": False, "old": True}
