"""The middlewares' background thread: it flushes the ledger in forked workers too, and
retires expired rules when a new day starts."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from intercept.assembly import _refresh_expiring, engine_for
from tests.upstream import repo_config


def test_a_worker_forked_after_the_app_was_built_flushes_its_counts(tmp_path: Path) -> None:
    database = tmp_path / "ledger.db"
    config = repo_config(ledger={"url": f"sqlite:{database}", "flush_seconds": 0.1})
    engine = engine_for(config, None, "test")  # built in the "master", as --preload does
    pid = os.fork()
    if pid == 0:  # the worker: count, and leave without exit handlers (as a crash would)
        code = 1
        try:
            engine.counts.search("search")
            engine.counts.search("search")
            time.sleep(1.0)  # the worker's own thread flushes meanwhile
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with sqlite3.connect(database) as connection:
        (searches,) = connection.execute("SELECT SUM(count) FROM searches").fetchone()
    assert searches == 2


def test_a_new_day_retires_expired_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(
        "list: {name: x, source: synthetic, updated: 2026-11-29}\n"
        "defaults: {category: demo, action: block, language: en}\n"
        "rules:\n"
        '  - {id: E-1, terms: ["amber falcon"], expires: 2999-01-01}\n',
        encoding="utf-8",
    )
    config = repo_config(rules=str(rules), ledger={"url": None})
    engine = engine_for(config, None, "test")
    assert engine.rules.match("amber falcon") is not None
    # the day comes: the file now says it has expired (as the calendar would make it)
    text = (rules / "r.yaml").read_text(encoding="utf-8").replace("2999-01-01", "2001-01-01")
    (rules / "r.yaml").write_text(text, encoding="utf-8")
    _refresh_expiring(config, engine)
    assert engine.rules.match("amber falcon") is None
