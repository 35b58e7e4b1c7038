"""Keep aiohttp's own log records free of request details.

aiohttp logs a request it cannot parse or handle with the client's address and a traceback
that quotes the request line, which holds the query. Intercept's public listener installs
`scrub_aiohttp_logs()`: such records keep their level and logger name but lose their
arguments, traceback and stack, and say only what happened.
"""

from __future__ import annotations

import logging

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


def scrub_aiohttp_logs() -> None:
    """Install the filter on aiohttp's loggers (idempotent)."""
    for name in AIOHTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
