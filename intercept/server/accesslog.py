"""The optional privacy-safe access log (`access_log: true`; off by default).

One line per request on the `intercept.access` logger: method, route name, status and
duration, nothing else. The method is one of the standard ones or `OTHER` (a client chooses
the method string, so it could carry text); the route is the configured search route's name,
`_intercept/<kind>` for Intercept's own paths, or `-` for everything else; never the path,
query, client address, user agent, referrer or any header.
"""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from intercept.config import Config
from intercept.core import INTERNAL_PREFIX
from intercept.extract import RouteTable, compile_routes, find_route

__all__ = ["ACCESS_LOGGER", "SafeAccessLogger", "route_label"]

ACCESS_LOGGER = logging.getLogger("intercept.access")
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"}
)


def route_label(routes: RouteTable, raw_path: str) -> str:
    """The route name of a request target, from configuration only."""
    path = raw_path.partition("?")[0]
    if path.startswith(INTERNAL_PREFIX):
        kind = path[len(INTERNAL_PREFIX) :].partition("/")[0]
        known = {"go", "continue", "authz", "auth-request", "page"}
        return f"_intercept/{kind if kind in known else 'other'}"
    found = find_route(routes, path)
    return found[0].name if found is not None else "-"


class SafeAccessLogger(AbstractAccessLogger):
    """aiohttp's access logger hook, writing only method, route, status and duration. Use
    `for_config`, which binds the configured routes."""

    routes: RouteTable = compile_routes(())

    @classmethod
    def for_config(cls, config: Config) -> type[SafeAccessLogger]:
        """This logger naming the routes of `config` (aiohttp makes one per connection)."""
        return type(cls.__name__, (cls,), {"routes": compile_routes(config.routes)})

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        method = request.method if request.method in _METHODS else "OTHER"
        route = route_label(self.routes, request.raw_path)
        self.logger.info("%s %s %d %.1fms", method, route, response.status, time * 1000.0)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
