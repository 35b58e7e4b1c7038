"""The decision service (`intercept serve --mode authz`): allow or intervene, for a request that
another proxy holds. An aiohttp front door over `intercept.core.Engine`, like the reverse proxy.

Endpoints (every front proxy's own contract; see deploy/README.md):

- `/_intercept/auth-request`: nginx `auth_request`. The original request is described by
  `X-Original-URI` and `X-Original-Method`. 204 allows, 403 denies (nginx drops the body, so
  there is none). Counts the search, never the intervention.
- `/_intercept/page`: where nginx's `error_page 403 = @intercept` location proxies with the same
  headers. Decides again and answers the page, interstitial or empty suggestion list that a
  reverse proxy would have sent, with the same language and variant choice; counts the
  intervention, never the search. So an nginx intervention is counted once.
- `/_intercept/authz`: Traefik ForwardAuth and Caddy `forward_auth`, the original request in
  `X-Forwarded-Method` and `X-Forwarded-Uri` (and its body, where Traefik's `forwardBody`
  sends it). `/_intercept/authz/<path?query>`: Envoy `ext_authz` with that path prefix, the
  original method and target in the check request itself. 200 with no body allows; a
  denial is 403 with the page's headers and body, which those proxies send to the client.
- `/_intercept/go/...` and `/_intercept/continue/...`: click-through and continue links, as in
  proxy mode. A warn interstitial's continue link leads back to the search with a signed
  token that the next decision honours (the token stays in the target the search front-end
  sees: a decision service cannot rewrite it). A warned POST search gets no continue link:
  nothing here can resend its body.

Descriptions of a request (`X-Original-*`, `X-Forwarded-*`) are read only from the configured
`authz.trusted_proxies`; from anyone else the decision endpoints answer 403.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from intercept.core import INTERNAL_PREFIX, Answer, Engine, Headers, Pass
from intercept.doors.frontdoor import Read, run_async, steps
from intercept.doors.proxy import read_bounded, response
from intercept.logscrub import scrub_aiohttp_logs

__all__ = ["AUTHZ", "AUTH_REQUEST", "PAGE", "AuthzDoor"]

AUTH_REQUEST = INTERNAL_PREFIX + "auth-request"
PAGE = INTERNAL_PREFIX + "page"
AUTHZ = INTERNAL_PREFIX + "authz"
_LOG = logging.getLogger("intercept.authz")


class _Trust:
    """Whether a peer address is one of the trusted proxies; remembered per address (the
    peers are a handful of proxies, so the memory is bounded by `_MAX_PEERS`)."""

    _MAX_PEERS = 1024

    def __init__(self, engine: Engine) -> None:
        self._networks = engine.config.authz.trusted_proxies
        self._known: dict[str, bool] = {}

    def __call__(self, remote: str | None) -> bool:
        if not remote:
            return True  # a Unix socket: only local processes can connect
        known = self._known.get(remote)
        if known is None:
            try:
                address = ipaddress.ip_address(remote)
            except ValueError:
                return False
            known = any(address in network for network in self._networks)
            if len(self._known) < self._MAX_PEERS:
                self._known[remote] = known
        return known


def _original(request: web.BaseRequest, kind: str) -> tuple[str, str, Mapping[str, str]] | str:
    """The described request's method, target and headers; or why it cannot be read."""
    headers = request.headers
    if kind == "envoy":
        target = request.raw_path[len(AUTHZ) :]
        return request.method, target, headers
    if kind == "forward":
        target = headers.get("X-Forwarded-Uri", "")
        method = headers.get("X-Forwarded-Method", request.method)
        missing = "X-Forwarded-Uri"
    else:
        target = headers.get("X-Original-URI", "")
        method = headers.get("X-Original-Method", "GET")
        missing = "X-Original-URI"
    if not target:
        return f"decision request without {missing}: check the front proxy's configuration"
    return method.upper(), target, headers


def _kind(raw_path: str) -> str | None:
    path = raw_path.partition("?")[0]
    if path == AUTH_REQUEST:
        return "nginx"
    if path == PAGE:
        return "page"
    if path == AUTHZ:
        return "forward"
    if path.startswith(AUTHZ + "/"):
        return "envoy"
    return None


class AuthzDoor:
    """The decision service's request handler, for aiohttp's low-level server (`web.Server`),
    as `intercept.doors.proxy.ProxyDoor` is for the reverse proxy."""

    def __init__(self, engine: Engine) -> None:
        scrub_aiohttp_logs()
        engine.replays_posts = False
        self.engine = engine
        self._trust = _Trust(engine)

    async def open(self) -> None:
        """Nothing to start: the decision service has no upstream."""

    async def close(self) -> None:
        """Nothing to stop."""

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        return await _handle(self.engine, self._trust, request)


async def _handle(engine: Engine, trust: _Trust, request: web.BaseRequest) -> web.StreamResponse:
    """Every request to the decision service."""
    raw = request.raw_path
    kind = _kind(raw)
    if kind is None:
        if raw.startswith(INTERNAL_PREFIX):  # click-through, continue links, answer form
            outcome = await _own(engine, request, raw)
            if isinstance(outcome, Pass):  # a replayed POST: not possible here
                return response(engine.error(405, request.headers, allow=""))
            return response(outcome)
        return response(engine.error(404, request.headers))
    if not trust(request.remote):
        _LOG.warning("decision request from an address not in authz.trusted_proxies: refused")
        return response(engine.error(403, request.headers), 403)
    described = _original(request, kind)
    if isinstance(described, str):
        _LOG.warning(described)
        return response(engine.error(400, request.headers), 403)
    method, target, headers = described
    decided = await _decide(engine, request, kind, method, target, headers)
    if isinstance(decided, Pass):
        if kind == "page":  # the rules changed between the decision and the page
            return response(engine.error(503, headers))
        return web.Response(status=204 if kind == "nginx" else 200)
    if kind == "nginx":
        return web.Response(status=403)
    return response(decided, None if kind == "page" else 403)


async def _own(engine: Engine, request: web.BaseRequest, target: str) -> Answer | Pass:
    """A request for one of Intercept's own paths, sent here by the front proxy as it came
    (the answer form's POST has its body read, bounded)."""
    header_bytes = sum(len(k) + len(v) + 4 for k, v in request.raw_headers)
    routine = steps(engine, request.method, target, request.headers, header_bytes)
    outcome, _ = await run_async(routine, _reader(request))
    return outcome


def _reader(request: web.BaseRequest) -> Callable[[int], Awaitable[Read]]:
    """`read(limit)` for the front-door routine: `request`'s body, at most `limit` bytes."""

    async def read(limit: int) -> Read:
        if not request.body_exists:
            return None
        body = await read_bounded(request, limit)
        return 413 if body is None else body

    return read


async def _decide(
    engine: Engine, request: web.BaseRequest, kind: str, method: str, target: str, headers: Headers
) -> Answer | Pass:
    """The described request through the front-door routine, counted as `kind` asks (nginx's
    decision counts the search, its page the intervention). Intercept's own paths are never
    decided; a body is read only where the front proxy sends one (Traefik, Envoy)."""
    header_bytes = sum(len(k) + len(v) + 4 for k, v in request.raw_headers)
    if target.startswith(INTERNAL_PREFIX):
        return engine.precheck(target, header_bytes) or engine.error(400, headers)
    read = _reader(request)
    routine = steps(engine, method, target, headers, header_bytes,
                    has_body=kind not in ("nginx", "page"), count_search=kind != "page",
                    count_intervention=kind != "nginx")  # fmt: skip
    decided, _ = await run_async(routine, read)
    return decided
