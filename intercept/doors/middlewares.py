"""What the WSGI and ASGI middlewares share, written once; each keeps only its I/O (the environ
or the scope, `wsgi.input` or `receive`, `start_response` or `send`) and runs the front-door
routine (`intercept.doors.frontdoor`) with it.

- `Middleware`: an application and an engine, checked when the middleware is built (a wrong
  argument fails there, not on the first request), and `failed`, what a request gets when
  Intercept's decision itself raises: Intercept's 500 page (the plain `FAILED` when even that
  cannot be made). The exception reaches neither the application (that could show results for
  a query that matches) nor the server (whose traceback would quote the query), and the log
  line names only its type.
- The factories, `wsgi_middleware` and `asgi_middleware`, take either `engine` (shared with
  other front doors, or built by hand) or `config`, from which rules and pages are loaded at
  once (`intercept.assembly.engine_for`: a broken rule file fails there, not on a request).
  They raise `TypeError` for a wrong argument type or when neither is given, `ValueError`
  when both are, and `intercept.RuleError` / `ConfigError` for rules or pages that do not
  load.
- `header_block`: the request headers as the core reads them (case-insensitive) and the size
  of the header block as the reverse proxy counts it (name, value, ": " and CRLF a line).
- `quoted_path` and `same_path`: the target decided on is the raw one the server gives only
  when it agrees with the path the application routes on; else that path, quoted again.
- `reply`: an `Answer` as sent, with a `Content-Length` (Intercept's answers are whole, so
  the server neither chunks nor closes) and no body for HEAD.

Privacy: nothing here or in either middleware logs a query, a client address or a header;
the WSGI or ASGI server's own access log does (the README says how to turn it off). Exceptions
raised by the application itself propagate as usual.

Imports neither aiohttp nor the server: a WSGI or ASGI application does not get them
(`tests/test_assembly.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import ClassVar, Generic, TypeVar
from urllib.parse import quote

from multidict import CIMultiDict

from intercept.core import Answer, Engine, Headers
from intercept.extract import normalize_path

__all__ = [
    "FAILED",
    "HeaderBlock",
    "Middleware",
    "header_block",
    "quoted_path",
    "reply",
    "same_path",
]

App = TypeVar("App", bound=Callable[..., object])
HeaderBlock = tuple[CIMultiDict[str], int]
"""The request headers, case-insensitive, and the size of their block."""
_PATH_SAFE = "/:@!$&'()*+,;=-._~"  # RFC 3986 pchar delimiters kept as they are
FAILED = Answer(
    500,
    (
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Cache-Control", "no-store"),
        ("Referrer-Policy", "no-referrer"),
        ("Server", "intercept"),
    ),
    b"Internal Server Error\n",
)
"""The answer when the engine cannot even make its own 500 page."""


class Middleware(Generic[App]):
    """Intercept in front of `app`, deciding with `engine`.

    Raises `TypeError` when `app` is not callable or `engine` is not an `Engine`.
    """

    __slots__ = ("app", "engine")
    _KIND: ClassVar[str]
    """What `app` must be, as the error names it ("a WSGI application")."""
    _LOG: ClassVar[logging.Logger]

    def __init__(self, app: App, engine: Engine) -> None:
        if not callable(app):
            raise TypeError(f"app must be {self._KIND} (a callable), got {type(app).__qualname__}")
        if not isinstance(engine, Engine):
            raise TypeError(
                f"engine must be an intercept.core.Engine, got {type(engine).__qualname__}"
            )
        self.app = app
        self.engine = engine

    def failed(self, error: Exception, headers: Callable[[], Headers]) -> Answer:
        """The answer after `error` was raised while deciding (see the module docstring);
        `headers()` gives the request headers, for the page's language."""
        self._LOG.error("intercept: decision failed (%s)", type(error).__name__)
        try:
            return self.engine.error(500, headers())
        except Exception:
            return FAILED


def header_block(pairs: Iterable[tuple[str, str]]) -> HeaderBlock:
    """The headers `pairs` (name, value) as a case-insensitive mapping, and their size."""
    headers: CIMultiDict[str] = CIMultiDict()
    size = 0
    for name, value in pairs:
        headers.add(name, value)
        size += len(name) + len(value) + 4
    return headers, size


def quoted_path(path: bytes) -> str:
    """`path` percent-quoted (RFC 3986's delimiters kept as they are); "/" when empty."""
    return quote(path, safe=_PATH_SAFE) or "/"


def same_path(raw: str, quoted: str) -> bool:
    """Whether the raw path a server gives is the `quoted` one the application routes on:
    equal, or equal as routes are compared (`/%73earch` is `/search`; a rewritten path is not)."""
    return raw == quoted or normalize_path(raw) == normalize_path(quoted)


def reply(answer: Answer, method: str) -> tuple[list[tuple[str, str]], bytes]:
    """The headers and body to send for `answer` to a `method` request (see the module
    docstring)."""
    headers = list(answer.headers)
    if not any(name.lower() == "content-length" for name, _ in headers):
        headers.append(("Content-Length", str(len(answer.body))))
    return headers, b"" if method.upper() == "HEAD" else answer.body
