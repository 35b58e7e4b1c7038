"""Assembling an engine from a configuration, for every front door: the rules, pages and
cautions loaded and checked up front (`build_engine`), the research ledger attached
(`attach_ledger`), and, for front doors without an event loop of Intercept's own, the thread
that hands counts over, flushes the ledger and retires expired rules at the turn of a UTC day
(`start_ledger_thread`). `engine_for` is what the middleware factories (`intercept.doors.wsgi`,
`intercept.doors.asgi`, `intercept.doors.searxng`) call.

Neutral by design: a WSGI or ASGI application imports this module, so it may import the
configuration, the core and what loads rules, pages and the ledger (`intercept.reload` for
the checked load behind the daily refresh), never `aiohttp.web` or any of the server's
modules (`intercept.server.serve`, `intercept.doors.proxy`, `intercept.server.admin`,
`intercept.server.supervisor`). `tests/test_assembly.py` checks that importing the middlewares
leaves those out of `sys.modules`. `intercept.serve` (the documented path of `build_engine`)
re-exports `build_engine`, `attach_ledger`, `engine_for` and `start_ledger_thread`.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from intercept.compiling import cached_rules, store_in_background
from intercept.config import Config
from intercept.core import Engine
from intercept.pages import pages_for
from intercept.preflight import CAUTIONS, production_cautions
from intercept.reload import load_checked

if TYPE_CHECKING:
    from intercept.research.ledger import Ledger

__all__ = ["attach_ledger", "build_engine", "engine_for", "start_ledger_thread"]


def build_engine(config: Config, *, cache: bool = False) -> Engine:
    """Rules, pages and everything a request needs, loaded and validated up front. With
    `cache` (`intercept serve`), the rules come from the compiled cache when it holds these
    files, and are stored there otherwise (`intercept.compiling`)."""
    from intercept import load_rules

    log = logging.getLogger("intercept")
    cautions = production_cautions(config)
    for caution in cautions:  # before the (maybe long) rule load, so they are seen at once
        log.warning("CAUTION, not production-ready: %s", caution.message)
    rules, digest = cached_rules(config) if cache else (None, None)
    if rules is not None:
        log.info("rule set %s: %d rules from the compiled cache", rules.version, len(rules))
    else:
        rules = load_rules(config.rules, key_file=config.rules_key_file)
        store_in_background(config, rules, digest)
    pages = pages_for(config)
    engine = Engine(config=config, rules=rules, pages=pages, cautions=cautions)
    engine.counts.cautions((caution.code for caution in cautions), CAUTIONS)
    return engine


def attach_ledger(config: Config, engine: Engine) -> Ledger | None:
    """Open the configured research ledger, with its spool (`ledger.spool`, by default
    beside a SQLite ledger file or in the working directory), and feed it `engine`'s
    counts."""
    if config.ledger.url is None:
        return None
    from intercept.research.ledger import Ledger, sqlite_path
    from intercept.research.spool import default_spool_path

    url = config.ledger.url
    spool = config.ledger.spool or default_spool_path(
        sqlite_path(url) if url.startswith("sqlite:") else None
    )
    ledger = Ledger.from_url(url, on_failure=engine.counts.ledger_failures.inc, spool=spool)
    engine.counts.ledger = ledger
    return ledger


def start_ledger_thread(config: Config, engine: Engine) -> Ledger | None:
    """For front doors without an event loop of Intercept's own (WSGI and ASGI middleware):
    attach the configured ledger and run a daemon thread that hands the tallied counts over
    every second, flushes the ledger every `flush_seconds` and, when a new UTC day starts,
    reloads the rules if any of them has an `expires` date. The thread is started again in
    every forked child (gunicorn `--preload`, uWSGI build the app before forking workers),
    and the ledger is flushed once more when the interpreter exits normally; a process
    killed without exit handlers loses at most one interval of counts."""
    ledger = attach_ledger(config, engine)
    interval = config.ledger.flush_seconds

    def tend() -> None:
        day = datetime.now(UTC).date()
        flushed = time.monotonic()
        while True:
            time.sleep(min(1.0, interval))
            engine.counts.sync_logged()  # every second, as `intercept serve` does
            if ledger is not None and time.monotonic() - flushed >= interval:
                flushed = time.monotonic()
                ledger.flush_now()
            if datetime.now(UTC).date() != day:
                day = datetime.now(UTC).date()
                _refresh_expiring(config, engine)

    def begin() -> None:
        threading.Thread(target=tend, name="intercept-background", daemon=True).start()

    begin()
    os.register_at_fork(after_in_child=begin)
    if ledger is not None:
        atexit.register(ledger.close)  # what cannot be written is spooled
    return ledger


def _refresh_expiring(config: Config, engine: Engine) -> None:
    """Load the rules again when some served rule has an expiry date (a new day may end it)."""
    if not any(spec.expires is not None for spec in engine.rules.rules):
        return
    try:
        rules, pages = load_checked(config)
    except Exception as error:  # the old set keeps serving
        logging.getLogger("intercept").warning(
            "daily rule refresh refused (%s)", type(error).__name__
        )
        engine.counts.rule_load_failures.inc()
        return
    engine.use(rules, pages)


def engine_for(config: Config | None, engine: Engine | None, factory: str) -> Engine:
    """The engine a middleware factory (`factory`, named in errors) was given, or one built
    from `config` with the configured ledger fed by a flushing thread."""
    if config is not None and engine is not None:
        raise ValueError(f"{factory}(): give config= or engine=, not both")
    if engine is not None:
        if not isinstance(engine, Engine):
            raise TypeError(f"{factory}(): engine must be an intercept.core.Engine, "
                            f"got {type(engine).__qualname__}")  # fmt: skip
        return engine
    if config is None:
        raise TypeError(f"{factory}(): missing config= (an intercept.config.Config) or engine=")
    if not isinstance(config, Config):
        raise TypeError(f"{factory}(): config must be an intercept.config.Config, "
                        f"got {type(config).__qualname__}")  # fmt: skip
    engine = build_engine(config)
    start_ledger_thread(config, engine)  # counts reach the research ledger too
    return engine
