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

Errors and privacy as in every middleware (`intercept.doors.middlewares`): a failed decision
is Intercept's 500 page, logged on `intercept.asgi` by the exception's type alone; a client
gone while its search body arrives is sent nothing. The ASGI server's own access log holds
queries and addresses; turn it off (see the README).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from intercept.assembly import engine_for
from intercept.config import Config
from intercept.core import Answer, Engine, Pass
from intercept.doors import middlewares
from intercept.doors.frontdoor import Read, run_async, steps

__all__ = ["ASGIApp", "InterceptASGI", "Message", "Receive", "Scope", "Send", "asgi_middleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_BODY_HEADERS = (b"content-length", b"content-type", b"content-encoding", b"transfer-encoding")


class _Gone(Exception):
    """The client disconnected while its search body was being received."""


class InterceptASGI(middlewares.Middleware[ASGIApp]):
    """An ASGI 3 application: Intercept in front of `app`, deciding with `engine`.

    Raises `TypeError` when `app` is not callable or `engine` is not an `Engine`.
    """

    __slots__ = ()
    _KIND = "an ASGI application"
    _LOG = logging.getLogger("intercept.asgi")

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
            outcome = self.failed(error, lambda: _request_headers(scope)[0])
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
        received: list[bytes] = []  # the body the application is to receive

        async def read(limit: int) -> Read:
            body = await _receive_body(receive, limit)
            if body is None:
                return 413
            received.append(body)
            return body or None

        outcome, _ = await run_async(steps(engine, method, target, headers, header_bytes), read)
        if isinstance(outcome, Answer):
            return outcome
        if outcome.method is not None:  # a warned POST search, replayed by the continue button
            # (from `begin`: nothing was received): the button's own form is read and dropped
            if await _receive_body(receive, engine.config.limits.body) is None:
                return engine.error(413, headers)
            received.append(outcome.body or b"")
        app_receive = _replay(received[0], receive) if received else receive
        return _app_scope(scope, target, outcome), app_receive


def asgi_middleware(
    app: ASGIApp, *, config: Config | None = None, engine: Engine | None = None
) -> InterceptASGI:
    """Wrap the ASGI 3 application `app` with Intercept, deciding with `engine` or with one
    built from `config` now (`intercept.doors.middlewares`: the errors). Starlette's
    `app.add_middleware(InterceptASGI, engine=engine)` does the same with an engine."""
    return InterceptASGI(app, engine_for(config, engine, "asgi_middleware"))


def _request_target(scope: Scope) -> str:
    """The raw request target: `raw_path` when it agrees with `path` (else `path` quoted
    again: what the application routes on) and `query_string`."""
    path = middlewares.quoted_path(str(scope.get("path", "")).encode("utf-8"))
    raw = scope.get("raw_path")
    raw_path = bytes(raw).decode("latin-1") if isinstance(raw, bytes | bytearray) else ""
    if raw_path and middlewares.same_path(raw_path, path):
        path = raw_path
    query = bytes(scope.get("query_string") or b"").decode("latin-1")
    return f"{path}?{query}" if query else path


def _request_headers(scope: Scope) -> middlewares.HeaderBlock:
    """The request headers as a case-insensitive mapping, and their size."""
    return middlewares.header_block(
        (bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
        for name, value in scope.get("headers") or ()
    )


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


async def _send(answer: Answer, method: str, send: Send) -> None:
    headers, body = middlewares.reply(answer, method)
    encoded = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    await send({"type": "http.response.start", "status": answer.status, "headers": encoded})
    await send({"type": "http.response.body", "body": body, "more_body": False})
