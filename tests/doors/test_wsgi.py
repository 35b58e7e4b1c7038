"""The WSGI middleware over real sockets: a Flask app wrapped by it, served on loopback by
waitress and werkzeug (which set `REQUEST_URI`, werkzeug also `RAW_URI`) and by wsgiref (which
sets neither: the target is rebuilt from `PATH_INFO`), with the same behaviours as the reverse
proxy."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import werkzeug.serving
from flask import Flask, Response, jsonify, request
from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server
from waitress.trigger import trigger

from intercept.core import Engine
from intercept.doors.wsgi import InterceptWSGI
from tests.middleware_helpers import (
    SERVER_TIMEOUT,
    call,
    interventions,
    make_engine,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

Site = tuple[str, Engine, str]  # base URL, engine, server name


# --- the application: Flask, reporting what it received ----------------------------------------


def flask_app() -> Flask:
    """A search site that answers every request with what it saw of it."""
    app = Flask("echo")

    @app.route("/search", methods=["GET", "POST", "PUT"])
    @app.route("/autocomplete")
    @app.route("/echo", methods=["GET", "POST"])
    def echo() -> Response:
        body = request.get_data(cache=True)  # the form below is parsed from the cached bytes
        response = jsonify(
            method=request.method,
            path=request.path,
            query=request.query_string.decode("latin-1"),
            uri=[request.environ.get(key) for key in ("REQUEST_URI", "RAW_URI")],
            content_type=request.content_type,
            body=body.decode("latin-1"),
            form=request.form.to_dict(flat=False),
            environ={k: v for k, v in request.environ.items() if isinstance(v, str)},
        )
        response.headers["X-App"] = "flask"
        return response

    return app


# --- the servers: waitress, werkzeug and wsgiref, each in a thread on a free loopback port -----


@contextmanager
def waitress_serving(app: Any) -> Iterator[str]:
    sockets: dict[int, Any] = {}
    server = create_server(app, map=sockets, host="127.0.0.1", port=0, threads=2)
    assert isinstance(server, BaseWSGIServer)
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        # everything is closed on the server's own thread, whose loop then ends
        cast(trigger, server.trigger).pull_trigger(lambda *_: wasyncore.close_all(sockets))
        thread.join(SERVER_TIMEOUT)
        server.task_dispatcher.shutdown(timeout=SERVER_TIMEOUT)
        assert not thread.is_alive()


class _NoAccessLog(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """wsgiref's access log (to stderr) would record the request line: off."""


@contextmanager
def _in_a_thread(server: socketserver.TCPServer, name: str) -> Iterator[str]:
    """`server` serving in a thread of its own until the block ends: its base URL."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(SERVER_TIMEOUT)
        assert not thread.is_alive()


@contextmanager
def wsgiref_serving(app: Any) -> Iterator[str]:
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_NoAccessLog)
    with _in_a_thread(server, "wsgiref") as base:
        yield base


class _NoWerkzeugAccessLog(werkzeug.serving.WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """werkzeug's access log would record the request line: off."""


@contextmanager
def werkzeug_serving(app: Any) -> Iterator[str]:
    server = werkzeug.serving.make_server(
        "127.0.0.1", 0, app, threaded=True, request_handler=_NoWerkzeugAccessLog
    )
    with _in_a_thread(server, "werkzeug") as base:
        yield base


SERVERS = {"waitress": waitress_serving, "werkzeug": werkzeug_serving, "wsgiref": wsgiref_serving}
"""waitress sets REQUEST_URI, werkzeug REQUEST_URI and RAW_URI, wsgiref neither."""


@pytest.fixture(params=sorted(SERVERS))
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    """Flask behind the middleware, on a free loopback port: (base URL, engine, server)."""
    engine = make_engine()
    with SERVERS[request.param](InterceptWSGI(flask_app(), engine)) as base:
        yield base, engine, request.param


def seen(body: bytes) -> dict[str, Any]:
    report = json.loads(body)
    assert isinstance(report, dict)
    return report


# --- transparency ------------------------------------------------------------------------------


@pytest.mark.parametrize("server", sorted(SERVERS))
async def test_benign_searches_see_the_same_environ_as_without_intercept(server: str) -> None:
    per_connection = ("REMOTE_PORT", "SERVER_PORT", "HTTP_HOST")

    def varying(environ: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in environ.items() if k not in per_connection}

    async def environs(base: str) -> list[dict[str, str]]:
        requests = [
            ("GET", "/search?q=teapot+museum&page=2", {}),
            ("POST", "/search?x=1", {"data": {"q": "kites", "page": "2"}}),
            ("GET", "/echo?q=blocked+example", {}),
        ]
        seen_environs = []
        for method, target, options in requests:
            _, headers, body = await call(method, base + target, **options)
            assert headers["X-App"] == "flask"
            seen_environs.append(varying(seen(body)["environ"]))
        return seen_environs

    serving = SERVERS[server]
    with serving(flask_app()) as bare_base:
        bare = await environs(bare_base)
    with serving(InterceptWSGI(flask_app(), make_engine())) as base:
        wrapped = await environs(base)
    assert wrapped == bare
    assert bare[1]["CONTENT_LENGTH"] == str(len("q=kites&page=2"))


async def test_a_rewritten_environ_is_decided_as_the_app_reads_it(site: Site) -> None:
    """An outer middleware that rewrites PATH_INFO or QUERY_STRING leaves REQUEST_URI as the
    client sent it; the decision follows what the application will read."""
    _, engine, server = site

    def rewrite(app: WSGIApplication) -> WSGIApplication:
        def outer(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            if environ["PATH_INFO"] == "/find":
                environ["PATH_INFO"] = "/search"
            environ["QUERY_STRING"] = environ["QUERY_STRING"].replace("term=", "q=")
            return app(environ, start_response)

        return outer

    with SERVERS[server](rewrite(InterceptWSGI(flask_app(), engine))) as base:
        for rewritten in ("/find?q=blocked+example", "/search?term=blocked+example"):
            _, headers, _ = await call("GET", base + rewritten)
            assert "X-App" not in headers, rewritten
        _, headers, body = await call("GET", base + "/find?term=kites")
        assert headers["X-App"] == "flask"
        assert seen(body)["path"] == "/search"
    assert interventions(engine) == 2
