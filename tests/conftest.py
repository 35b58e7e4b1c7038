"""Shared test helpers: build rule sets in memory without touching rule files."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from hypothesis import settings

from intercept.rules.ruleset import RuleSet, compile_rules
from intercept.rules.rulespec import Action, MatchMode, RuleSpec
from tests.pg_helpers import PostgresServer, fresh_database, postgres_server

MakeRules = Callable[..., RuleSet]

# The compiled rule cache of every server the tests start (`rules_cache: auto`) goes to a
# folder of this run, never to the user's ~/.cache (intercept.compiling).
_CACHE = tempfile.mkdtemp(prefix="intercept-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE
os.environ.pop("CACHE_DIRECTORY", None)
atexit.register(shutil.rmtree, _CACHE, True)


def spec(
    rule_id: str,
    *terms: str,
    action: str = "block",
    match: str = "word",
    unless: tuple[str, ...] = (),
    all_of: tuple[tuple[str, ...], ...] = (),
    category: str = "demo",
    language: str = "en",
) -> RuleSpec:
    """A rule spec with the defaults a test rarely cares about."""
    return RuleSpec(
        id=rule_id,
        category=category,
        action=Action(action),
        language=language,
        match=MatchMode(match),
        terms=terms,
        all_of=all_of,
        unless=unless,
    )


@pytest.fixture
def make_rules() -> MakeRules:
    """`make_rules(spec(...), ...)` compiles specs into a RuleSet."""

    def build(*specs: RuleSpec) -> RuleSet:
        return compile_rules(specs)

    return build


@pytest.fixture
async def upstream() -> AsyncIterator[TestServer]:
    """A real aiohttp upstream on loopback (see tests/upstream.py)."""
    from tests.upstream import upstream_app

    server = TestServer(upstream_app(), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def proxy(upstream: TestServer) -> AsyncIterator[tuple[str, Any]]:
    """Intercept in front of `upstream`: (base URL, engine)."""
    from tests.upstream import running_proxy

    async with running_proxy(f"http://127.0.0.1:{upstream.port}") as started:
        yield started


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server (tests/pg_helpers.py), started once per session when a test
    first asks for it (about 3 s) and stopped at the end; skips, saying why, without one."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    """A new, empty database on `postgres` for one test (dropped afterwards); its URL."""
    yield from fresh_database(postgres)


settings.register_profile("thorough", max_examples=5000, deadline=None)


settings.register_profile("default", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
