"""What only the aiohttp middleware does: its tallies reach the metrics by themselves, its
factories check their arguments, building it scrubs aiohttp's logs. The cases every front door
shares (searches, pages, clicks, bodies, failures, privacy) run in `tests/doors/test_doors.py`."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web

from intercept.doors.aiohttp_middleware import intercept_middleware, setup
from tests.doors.test_doors import aiohttp_serving, site_app
from tests.middleware_helpers import make_engine
from tests.upstream import fetch


async def test_counts_reach_the_metrics_without_a_scrape() -> None:
    """The middleware hands its tallies over every second by itself
    (intercept.research.counting), so another worker's scrape sees them; read here straight
    from the registry, no sync."""
    engine = make_engine()
    app = site_app()
    setup(app, engine.config, engine=engine)
    async with aiohttp_serving(app) as base:
        await fetch("GET", base + "/search?q=garden+chairs")
        registry = engine.counts.registry
        for _ in range(50):
            if registry.get_sample_value("intercept_searches_total", {"route": "search"}) == 1:
                break
            await asyncio.sleep(0.1)
    assert registry.get_sample_value("intercept_searches_total", {"route": "search"}) == 1


def test_the_factory_checks_its_dependencies() -> None:
    with pytest.raises(TypeError, match="engine must be an intercept Engine"):
        intercept_middleware(engine="rules.yaml")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config must be an intercept Config"):
        setup(web.Application(), {"rules": "rules"})  # type: ignore[arg-type]


def test_building_the_middleware_scrubs_aiohttp_logs() -> None:
    from intercept.logscrub import _FILTER

    logger = logging.getLogger("aiohttp.server")
    logger.removeFilter(_FILTER)
    intercept_middleware(engine=make_engine())
    assert _FILTER in logger.filters
