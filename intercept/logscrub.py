"""Keep aiohttp's own log records and error answers free of request details.

aiohttp logs a request it cannot parse or handle with the client's address and a traceback
that quotes the request line, which holds the query; and its 400 answer to such a request
repeats the offending bytes. Intercept's public listener installs `scrub_aiohttp_logs()`: such
records keep their level and logger name but lose their arguments, traceback and stack, and
error answers say only their status.
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


class _Scrub(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        kind = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        record.msg = f"request failed ({kind})" if kind else "request failed"
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
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
