"""The WSGI middleware: Intercept inside a WSGI application (Flask, Django, SearXNG...).

`wsgi_middleware(app, config=...)` (or `InterceptWSGI(app, engine)`) wraps any WSGI callable
and asks `intercept.core.Engine` about each request before the application sees it, exactly as
the reverse proxy does:

- the target is the raw request target: `REQUEST_URI` or `RAW_URI` when the server provides it
  (waitress, gunicorn, uWSGI, werkzeug) and it agrees with the environ, else `SCRIPT_NAME` +
  `PATH_INFO` percent-quoted again, with `QUERY_STRING` (what the application reads);
- `/_intercept/...` (click-through and continue links) is answered here;
- on a search route, a search body is read (at most `limits.body` bytes, more is a 413) and
  handed on to the application in a fresh `wsgi.input`, so the application still reads it;
- an `Answer` (deterrence page, empty suggestion list, error, redirect) is sent instead of
  calling the application; on a `Pass` the application is called, with the continue token
  removed from `QUERY_STRING` (and `REQUEST_URI`/`RAW_URI`), or, for a warned POST search
  replayed by the interstitial's continue button, with the original method, path, query,
  content type and body.

Wrap the application that serves the site's root: the pages link to `/_intercept/...`.

Errors and privacy as in every middleware (`intercept.doors.middlewares`): a failed decision
is Intercept's 500 page, logged on `intercept.wsgi` by the exception's type alone. The WSGI
server's own access log holds queries and addresses; turn it off (see the README).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, MutableMapping
from http import HTTPStatus
from io import BytesIO
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from intercept.assembly import engine_for
from intercept.config import Config
from intercept.core import Answer, Engine, Pass
from intercept.doors import middlewares
from intercept.doors.frontdoor import run, steps

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["InterceptWSGI", "wsgi_middleware"]

_CHUNK = 64 * 1024
_RAW_TARGETS = ("REQUEST_URI", "RAW_URI")
_PHRASES = {status.value: status.phrase for status in HTTPStatus}


class InterceptWSGI(middlewares.Middleware["WSGIApplication"]):
    """A WSGI application: Intercept in front of `app`, deciding with `engine`.

    Raises `TypeError` when `app` is not callable or `engine` is not an `Engine`.
    """

    __slots__ = ()
    _KIND = "a WSGI application"
    _LOG = logging.getLogger("intercept.wsgi")

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """One request: Intercept's answer, or the application's with `environ` adjusted."""
        try:
            answer = self._decide(environ)
        except Exception as error:
            answer = self.failed(error, lambda: _request_headers(environ)[0])
        if answer is None:
            return self.app(environ, start_response)
        headers, body = middlewares.reply(answer, str(environ.get("REQUEST_METHOD", "GET")))
        start_response(f"{answer.status} {_PHRASES.get(answer.status, 'Unknown')}", headers)
        return [body]

    def _decide(self, environ: WSGIEnvironment) -> Answer | None:
        """Intercept's answer, or None after preparing `environ` for the application."""
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        target = _request_target(environ)
        headers, header_bytes = _request_headers(environ)
        routine = steps(self.engine, method, target, headers, header_bytes)
        outcome, _ = run(routine, lambda limit: _read_body(environ, limit))
        if isinstance(outcome, Answer):
            return outcome
        _prepare(environ, target, outcome)
        return None


def wsgi_middleware(
    app: WSGIApplication, *, config: Config | None = None, engine: Engine | None = None
) -> InterceptWSGI:
    """Wrap the WSGI application `app` (Flask: `app.wsgi_app`) with Intercept, deciding with
    `engine` or with one built from `config` now (`intercept.doors.middlewares`: the errors)."""
    return InterceptWSGI(app, engine_for(config, engine, "wsgi_middleware"))


def _request_target(environ: WSGIEnvironment) -> str:
    """The raw request target: `REQUEST_URI`/`RAW_URI` when the server sets one that agrees
    with `PATH_INFO` and `QUERY_STRING`, else those (with `SCRIPT_NAME`) quoted again.

    A raw target that disagrees (absolute-form, or an outer middleware rewrote the path or
    query) is not what the application will read: the decision is about what it reads."""
    path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    quoted = middlewares.quoted_path(path.encode("latin-1", "replace"))
    query = str(environ.get("QUERY_STRING", ""))
    for key in _RAW_TARGETS:
        raw = environ.get(key)
        if isinstance(raw, str) and raw:
            raw_path, _, raw_query = raw.partition("?")
            if raw_query == query and middlewares.same_path(raw_path, quoted):
                return raw
            break
    return f"{quoted}?{query}" if query else quoted


def _request_headers(environ: WSGIEnvironment) -> middlewares.HeaderBlock:
    """The request headers (`HTTP_*`, `CONTENT_TYPE`, `CONTENT_LENGTH`) and their size."""
    return middlewares.header_block(
        (key.removeprefix("HTTP_").replace("_", "-").title(), str(value))
        for key, value in environ.items()
        if key.startswith("HTTP_") or (key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value)
    )


def _read_body(environ: WSGIEnvironment, limit: int) -> bytes | int | None:
    """The request body (at most `limit` bytes), None when there is none, or an error status.

    The bytes read replace `wsgi.input` (and `CONTENT_LENGTH` says how many they are), so the
    application reads the same body."""
    declared = str(environ.get("CONTENT_LENGTH") or "").strip()
    if declared:
        if not (declared.isascii() and declared.isdigit()):
            return 400  # "²" is a digit to str.isdigit(), not to int()
        wanted = int(declared)
        if wanted > limit:
            return 413
    elif environ.get("wsgi.input_terminated"):
        wanted = limit + 1  # a chunked body, read to its end
    else:
        return None  # no length and no end: PEP 3333 says there is no body to read
    stream = environ["wsgi.input"]
    chunks: list[bytes] = []
    size = 0
    try:
        while size < wanted:
            chunk = stream.read(min(_CHUNK, wanted - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError:
        return 400  # the client went away mid-body
    if size > limit:
        return 413
    if not chunks:
        return None  # nothing was consumed: the application finds the same empty stream
    body = b"".join(chunks)
    environ["wsgi.input"] = BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def _prepare(environ: WSGIEnvironment, target: str, outcome: Pass) -> None:
    """`environ` as the application should see it after `outcome`."""
    if outcome.method is not None:  # a warned POST search, replayed by the continue button
        body = outcome.body or b""
        environ["REQUEST_METHOD"] = outcome.method
        environ["wsgi.input"] = BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ["CONTENT_TYPE"] = outcome.content_type or ""
        for stale in ("HTTP_CONTENT_ENCODING", "HTTP_TRANSFER_ENCODING"):
            environ.pop(stale, None)
    if outcome.target != target:
        _retarget(environ, target, outcome.target)


def _retarget(environ: MutableMapping[str, Any], old: str, new: str) -> None:
    path, _, query = new.partition("?")
    environ["QUERY_STRING"] = query
    for key in _RAW_TARGETS:
        if key in environ:
            environ[key] = new
    if path != old.partition("?")[0]:
        decoded = unquote_to_bytes(path).decode("latin-1")
        script = str(environ.get("SCRIPT_NAME", ""))
        if script and decoded.startswith(script):
            decoded = decoded[len(script) :]
        environ["PATH_INFO"] = decoded
