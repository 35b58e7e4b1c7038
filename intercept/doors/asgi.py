"""The ASGI middleware: Intercept inside an ASGI 3 application (Starlette, FastAPI, Django).

`asgi_middleware(app, config=...)` (or `InterceptASGI(app, engine)`) wraps any ASGI 3
application and asks `intercept.core.Engine` about each HTTP request before the application
sees it, exactly as the reverse proxy does. Only `http` scopes are decided; `lifespan`,
`websocket` and any other scope go to the application untouched.

- The target is the raw request target: `scope["raw_path"]` (the path re-quoted when the
  server gives none, or when an outer middleware rewrote `path` alone: the decision is about
  what the application routes on) and `scope["query_string"]`; headers come from
  `scope["headers"]`.
- `/_intercept/...` (click-through and continue links) is answered here.
- On a search route, the search body is received (at most `limits.body` bytes, more is a 413)
  and replayed to the application as one `http.request` message; later `receive()` calls go
  to the server (for `http.disconnect`).
- An `Answer` (deterrence page, empty suggestion list, error, redirect) is sent with
  `http.response.start` and `http.response.body` instead of calling the application. On a
  `Pass` the application is called, with the continue token removed from a new scope's
  `query_string` (and `raw_path`/`path`), or, for a warned POST search replayed by the
  interstitial's continue button, with the original method, path, query, content type and body.

Mount it at the site's root: the pages link to `/_intercept/...`.

Errors: an unexpected exception inside Intercept's decision neither reaches the application
(that could show results for a query that matches) nor the server (whose traceback would
quote the query): the searcher gets Intercept's 500 page and the `intercept.doors.asgi` logger
records only "intercept: decision failed (<exception type>)". Exceptions raised by the
application itself propagate as usual.

Privacy: nothing here logs a query, a client address or a header. The ASGI server's own
access log does; turn it off (see the README).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote, unquote

from multidict import CIMultiDict

from intercept.assembly import engine_for
from intercept.config import Config
from intercept.core import Answer, Engine, Pass
from intercept.doors.frontdoor import Read, run_async, steps
from intercept.extract import normalize_path

__all__ = ["ASGIApp", "InterceptASGI", "Message", "Receive", "Scope", "Send", "asgi_middleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_LOG = logging.getLogger("intercept.asgi")
_PATH_SAFE = "/:@!$&'()*+,;=-._~"  # RFC 3986 pchar delimiters kept as they are
_BODY_HEADERS = (b"content-length", b"content-type", b"content-encoding", b"transfer-encoding")
_FAILED = Answer(
    500,
    (
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Cache-Control", "no-store"),
        ("Referrer-Policy", "no-referrer"),
        ("Server", "intercept"),
    ),
    b"Internal Server Error\n",
)


class _Gone(Exception):
    """The client disconnected while its search body was being received."""


class InterceptASGI:
    """An ASGI 3 application: Intercept in front of `app`, deciding with `engine`.

    Raises `TypeError` when `app` is not callable or `engine` is not an `Engine`.
    """

    __slots__ = ("app", "engine")

    def __init__(self, app: ASGIApp, engine: Engine) -> None:
        if not callable(app):
            raise TypeError(
                f"app must be an ASGI application (a callable), got {type(app).__qualname__}"
            )
        if not isinstance(engine, Engine):
            raise TypeError(
                f"engine must be an intercept.core.Engine, got {type(engine).__qualname__}"
            )
        self.app = app
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One connection scope: HTTP requests are decided, everything else passes."""
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        try:
            outcome = await self._decide(scope, receive)
        except _Gone:
            return  # nobody to answer
        except Exception as error:
            _LOG.error("intercept: decision failed (%s)", type(error).__name__)
            outcome = self._failed(scope)
        if isinstance(outcome, Answer):
            await _send(outcome, str(scope.get("method", "GET")), send)
            return
        app_scope, app_receive = outcome
        await self.app(app_scope, app_receive, send)

    async def _decide(self, scope: Scope, receive: Receive) -> Answer | tuple[Scope, Receive]:
        """Intercept's answer, or the scope and receive channel for the application."""
        engine = self.engine
        method = str(scope.get("method", "GET")).upper()
        target = _request_target(scope)
        headers, header_bytes = _request_headers(scope)
        app_receive = receive
        received: list[bytes] = []

        async def read(limit: int) -> Read:
            body = await _receive_body(receive, limit)
            if body is None:
                return 413
            received.append(body)
            return body or None

        routine = steps(engine, method, target, headers, header_bytes)
        outcome, _ = await run_async(routine, read)
        if received:  # the application reads the same body
            app_receive = _replay(received[0], receive)
        elif (
            isinstance(outcome, Pass)
            and outcome.method is not None  # the continue button's own (empty) form is read
            and await _receive_body(receive, engine.config.limits.body) is None  # and dropped
        ):
            return engine.error(413, headers)
        if isinstance(outcome, Answer):
            return outcome
        return _app_scope(scope, target, outcome), _app_receive(outcome, app_receive, receive)

    def _failed(self, scope: Scope) -> Answer:
        try:
            return self.engine.error(500, _request_headers(scope)[0])
        except Exception:
            return _FAILED


def asgi_middleware(
    app: ASGIApp, *, config: Config | None = None, engine: Engine | None = None
) -> InterceptASGI:
    """Wrap `app` with Intercept. Give either `engine` (shared with other front doors, or
    built by hand), or `config`, from which rules and pages are loaded now
    (`intercept.assembly.build_engine`: a broken rule file fails here, not on a request).

    Raises `TypeError` for a wrong argument type or when neither is given, `ValueError` when
    both are, and `intercept.RuleError` / `ConfigError` for rules or pages that do not load.
    """
    return InterceptASGI(app, engine_for(config, engine, "asgi_middleware"))


def _request_target(scope: Scope) -> str:
    """The raw request target: `raw_path` when it agrees with `path` (else `path` quoted
    again: what the application routes on) and `query_string`."""
    path = quote(str(scope.get("path", "")).encode("utf-8"), safe=_PATH_SAFE) or "/"
    raw = scope.get("raw_path")
    if isinstance(raw, bytes | bytearray) and raw:
        raw_path = bytes(raw).decode("latin-1")
        if raw_path == path or normalize_path(raw_path) == normalize_path(path):
            path = raw_path
    query = bytes(scope.get("query_string") or b"").decode("latin-1")
    return f"{path}?{query}" if query else path


def _request_headers(scope: Scope) -> tuple[CIMultiDict[str], int]:
    """The request headers as a case-insensitive mapping, and their size."""
    headers: CIMultiDict[str] = CIMultiDict()
    size = 0
    for name, value in scope.get("headers") or ():
        key, text = bytes(name).decode("latin-1"), bytes(value).decode("latin-1")
        headers.add(key, text)
        size += len(key) + len(text) + 4
    return headers, size


async def _receive_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None when it is larger than `limit`.

    Raises `_Gone` when the client disconnects first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message.get("type")
        if kind == "http.disconnect":
            raise _Gone
        if kind != "http.request":
            continue
        chunk = bytes(message.get("body") or b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive channel that gives `body` as one message, then defers to `receive`."""
    pending = [body]

    async def replayed() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replayed


def _app_scope(scope: Scope, target: str, outcome: Pass) -> Scope:
    """The scope the application sees after `outcome` (the same one when nothing changed)."""
    if outcome.target == target and outcome.method is None:
        return scope
    changed = dict(scope)
    path, _, query = outcome.target.partition("?")
    changed["raw_path"] = path.encode("latin-1")
    changed["path"] = unquote(path)
    changed["query_string"] = query.encode("latin-1")
    if outcome.method is not None:  # a warned POST search, replayed by the continue button
        body = outcome.body or b""
        headers = [(k, v) for k, v in scope.get("headers") or () if k.lower() not in _BODY_HEADERS]
        headers.append((b"content-length", str(len(body)).encode("latin-1")))
        if outcome.content_type:
            headers.append((b"content-type", outcome.content_type.encode("latin-1")))
        changed["method"] = outcome.method
        changed["headers"] = headers
    return changed


def _app_receive(outcome: Pass, app_receive: Receive, receive: Receive) -> Receive:
    if outcome.method is not None:
        return _replay(outcome.body or b"", receive)
    return app_receive


def _headers(answer: Answer) -> list[tuple[bytes, bytes]]:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
    if not any(name == b"content-length" for name, _ in headers):
        headers.append((b"content-length", str(len(answer.body)).encode("latin-1")))
    return headers


async def _send(answer: Answer, method: str, send: Send) -> None:
    await send(
        {"type": "http.response.start", "status": answer.status, "headers": _headers(answer)}
    )
    body = b"" if method.upper() == "HEAD" else answer.body
    await send({"type": "http.response.body", "body": body, "more_body": False})
