"""Keep aiohttp's own log records and error answers free of request details.

aiohttp logs a request it cannot parse or handle with the client's address and a traceback
that quotes the request line, which holds the query; its access records carry the request line
and headers as extra attributes; and its 400 answer to such a request repeats the offending
bytes. Intercept's listeners install `scrub_aiohttp_logs()`: such records keep their level and
logger name but lose their arguments, extra attributes, traceback and stack, and error answers
say only their status.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

__all__ = ["AIOHTTP_LOGGERS", "scrub_aiohttp_logs"]

AIOHTTP_LOGGERS = (
    "aiohttp.access", "aiohttp.client", "aiohttp.internal", "aiohttp.server",
    "aiohttp.web", "aiohttp.websocket",
)  # fmt: skip


_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class _Scrub(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        kind = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        if record.name == "aiohttp.access":
            record.msg = "request served (details removed)"
        else:
            record.msg = f"request failed ({kind})" if kind else "request failed"
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        # aiohttp also attaches the request line and headers as extra attributes, which a
        # structured (JSON) formatter would write out
        for name in [n for n in record.__dict__ if n not in _STANDARD]:
            del record.__dict__[name]
        return True


_FILTER = _Scrub()


_original_handle_error = RequestHandler.handle_error


def _handle_error(
    self: RequestHandler,
    request: BaseRequest,
    status: int = 500,
    exc: BaseException | None = None,
    message: str | None = None,
) -> StreamResponse:
    """aiohttp's error answer, with its message replaced by the bare status phrase."""
    phrase = None if status == 500 else f"{status} {HTTPStatus(status).phrase}"
    return _original_handle_error(self, request, status, exc, phrase)


def scrub_aiohttp_logs() -> None:
    """Install the filter on aiohttp's loggers and the plain error answer (idempotent)."""
    for name in AIOHTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    RequestHandler.handle_error = _handle_error  # type: ignore[method-assign]
