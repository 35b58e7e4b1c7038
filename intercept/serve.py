"""Running the public listener: load everything, serve until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable
from typing import Any

from aiohttp import web

from intercept.authz import build_authz_app
from intercept.config import Config
from intercept.pages import load_pages
from intercept.proxy import Engine, build_app

__all__ = ["build_engine", "run", "runner_options", "settle_heap", "start"]


def build_engine(config: Config) -> Engine:
    """Rules, pages and everything a request needs, loaded and validated up front."""
    from intercept import load_rules

    if config.warn.secret is None and config.warn.secret_file is None:
        logging.getLogger("intercept").warning(
            "warn.secret is not set: continue links use a random key and stop working on "
            "restart and across workers"
        )
    rules = load_rules(config.rules)
    pages = load_pages(
        config.messages,
        survey_url=config.survey_url,
        country=config.country,
        default_language=config.default_language,
    )
    return Engine(config=config, rules=rules, pages=pages)


def _host_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def runner_options(config: Config) -> dict[str, Any]:
    """Server settings: no access log, and parser limits above the configured ones, so that
    those are answered by Intercept with 414 and 431 rather than by the parser with 400."""
    return {
        "access_log": None,  # an access log would record queries; see the privacy notes
        "max_line_size": config.limits.request_target + 1024,
        "max_field_size": config.limits.headers + 1024,
        "max_headers": 1024,
        "auto_decompress": False,  # request bodies are forwarded as they were sent
    }


def settle_heap() -> None:
    """Take what is loaded (rules, pages: millions of objects with 50,000 rules) out of the
    garbage collector's reach, and collect young objects less often. Without this the
    collector keeps re-walking the rule set: measured 20-25 us of CPU per relayed request
    with 50,000 rules (bench/proxy_bench.py), a fifth of the request's cost."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


async def start(config: Config, engine: Engine | None = None) -> web.AppRunner:
    """Start the public listener (reverse proxy or decision service, by `config.mode`);
    the caller cleans the runner up."""
    engine = engine or build_engine(config)
    app = build_authz_app(engine) if config.mode == "authz" else build_app(engine)
    runner = web.AppRunner(app, handle_signals=False, **runner_options(config))
    await runner.setup()
    host, port = _host_port(config.listen)
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    return runner


async def _serve(config: Config, ready: Callable[[web.AppRunner], None] | None) -> None:
    runner = await start(config)
    settle_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready(runner)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run(config: Config, ready: Callable[[web.AppRunner], None] | None = None) -> None:
    """Serve until SIGINT or SIGTERM; requests in flight finish first."""
    asyncio.run(_serve(config, ready))
