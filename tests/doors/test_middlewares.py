"""What the WSGI and ASGI middlewares share, run over both: a chunked search body past the limit
over real sockets (Flask on waitress, Starlette on uvicorn), the factories that build the engine
from a configuration, and the dependencies they refuse."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from intercept.core import Engine
from intercept.doors.asgi import InterceptASGI, asgi_middleware
from intercept.doors.wsgi import InterceptWSGI, wsgi_middleware
from tests.doors.test_asgi import serving, starlette_app
from tests.doors.test_wsgi import flask_app, waitress_serving
from tests.middleware_helpers import FORM, call, make_engine
from tests.upstream import repo_config


@dataclass(frozen=True)
class Kind:
    """One middleware: its factory, its class, an application to wrap and what the class says
    when given something else."""

    factory: Callable[..., Any]
    middleware: Callable[..., Any]
    app: Callable[[], Any]
    not_an_app: str


KINDS = {
    "wsgi": Kind(wsgi_middleware, InterceptWSGI, flask_app, "app must be a WSGI application"),
    "asgi": Kind(asgi_middleware, InterceptASGI, starlette_app, "app must be an ASGI application"),
}


@pytest.fixture(params=sorted(KINDS))
async def site(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, Engine]]:
    """The app behind the middleware on a free loopback port, on a server that reads chunked
    bodies (waitress; wsgiref cannot): (base URL, engine)."""
    engine = make_engine()
    if request.param == "wsgi":
        with waitress_serving(InterceptWSGI(flask_app(), engine)) as base:
            yield base, engine
    else:
        async with serving(InterceptASGI(starlette_app(), engine)) as base:
            yield base, engine


async def test_oversized_chunked_search_body_is_413(site: tuple[str, Engine]) -> None:
    base, engine = site
    limit = engine.config.limits.body

    async def chunks() -> AsyncIterator[bytes]:
        yield b"q=kites&pad="
        yield b"x" * limit

    status, headers, _ = await call(
        "POST", base + "/search", data=chunks(), headers={"Content-Type": FORM}
    )
    assert status == 413
    assert "X-App" not in headers

    async def small() -> AsyncIterator[bytes]:
        yield b"q=blocked"
        yield b"+example"

    _, headers, _ = await call(
        "POST", base + "/search", data=small(), headers={"Content-Type": FORM}
    )
    assert "X-App" not in headers  # a chunked body is read to its end and decided


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_factory_builds_the_engine_from_a_config(kind: str, tmp_path: Path) -> None:
    build = KINDS[kind]
    config = repo_config(ledger={"url": f"sqlite:{tmp_path / 'ledger.db'}"})
    middleware = build.factory(build.app(), config=config)
    assert middleware.engine.config is config
    assert middleware.engine.rules.rules
    ledger = middleware.engine.counts.ledger
    assert ledger is not None  # the configured ledger is fed and flushed
    middleware.engine.counts.search("search")
    assert ledger.flush_now()
    assert (tmp_path / "ledger.db").exists()
    engine = make_engine()
    assert build.factory(build.app(), engine=engine).engine is engine


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_factory_and_class_refuse_wrong_dependencies(kind: str) -> None:
    build = KINDS[kind]
    app = build.app()
    engine = make_engine()
    with pytest.raises(TypeError, match="missing config="):
        build.factory(app)
    with pytest.raises(ValueError, match="not both"):
        build.factory(app, config=engine.config, engine=engine)
    with pytest.raises(TypeError, match=r"engine must be an intercept\.core\.Engine, got str"):
        build.factory(app, engine=cast(Engine, "engine"))
    with pytest.raises(TypeError, match=r"config must be an intercept\.config\.Config, got dict"):
        build.factory(app, config=cast(Any, {"rules": "rules"}))
    with pytest.raises(TypeError, match=build.not_an_app):
        build.middleware(cast(Any, None), engine)
    with pytest.raises(TypeError, match="engine must be"):
        build.middleware(app, cast(Engine, None))
