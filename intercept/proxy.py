"""The reverse proxy (`intercept serve --mode proxy`): decide on searches, forward the rest.

A request on a configured route has its query texts extracted and decided. `block` answers
with the deterrence page, `warn` with an interstitial that can continue, `shadow` is counted
and forwarded; an autocomplete route answers an empty suggestion list instead of a page.
Everything else is forwarded transparently: the raw request target as received, headers less
the hop-by-hop ones (RFC 9110 7.6.1, and every header named in `Connection`), bodies streamed
both ways, no decompression, no redirects followed. Only a search route's body is read first,
up to the configured limit, to find a query in a form or JSON document.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from intercept.config import Config
from intercept.counting import Counts
from intercept.decide import TOKEN_PARAM, ContinueTokens, decide, strip_param
from intercept.extract import (
    CompiledRoute,
    UnreadableBody,
    compile_routes,
    find_route,
    texts_from_body,
    texts_from_target,
)
from intercept.logscrub import scrub_aiohttp_logs
from intercept.pages import Page, Pages
from intercept.relay import forward
from intercept.ruleset import Match, RuleSet
from intercept.rulespec import Action
from intercept.variants import VariantChooser

__all__ = ["ENGINE", "Engine", "build_app"]

INTERNAL_PREFIX = "/_intercept/"
_MAX_CONTINUE_LINK = 4096
_OWN = {"Server": "intercept"}
_CHUNK = 64 * 1024


@dataclass(slots=True)
class Engine:
    """What requests share: configuration, the current rule set (swapped whole on reload),
    pages, routes, tokens, counters and the upstream client."""

    config: Config
    rules: RuleSet
    pages: Pages
    counts: Counts = field(default_factory=Counts)
    routes: tuple[CompiledRoute, ...] = ()
    tokens: ContinueTokens | None = None
    chooser: VariantChooser | None = None
    session: aiohttp.ClientSession | None = None
    client_timeout: aiohttp.ClientTimeout | None = None

    def __post_init__(self) -> None:
        self.routes = compile_routes(self.config.routes)
        timeouts = self.config.timeouts
        self.client_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeouts.connect, sock_read=timeouts.read_idle
        )
        warn = self.config.warn
        secret = warn.secret
        if secret is None and warn.secret_file is not None:
            secret = warn.secret_file.read_text(encoding="utf-8").strip()
        self.tokens = ContinueTokens.from_secret(secret, warn.ttl_seconds)
        variants = self.config.variants
        self.chooser = VariantChooser(
            {k: v for k, v in variants.weights.items() if k in self.pages.variants},
            mode=variants.mode,
        )


ENGINE = web.AppKey("engine", Engine)


def _respond(page: Page, status: int) -> web.Response:
    # our own answers name no software version (aiohttp would add one)
    return web.Response(body=page.body, status=status, headers={**dict(page.headers), **_OWN})


def _error(engine: Engine, request: web.Request, status: int) -> web.Response:
    language = engine.pages.choose_language(None, request.headers.get("Accept-Language"))
    return _respond(engine.pages.error_page(status, language), status)


async def _read_bounded(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None when it is larger than `limit`."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _suggestions(route: CompiledRoute) -> web.Response:
    # The query is never echoed, not even as OpenSearch's first element.
    body: list[Any] = ["", []] if route.route.suggest_format == "opensearch" else []
    return web.Response(
        body=json.dumps(body).encode(),
        content_type="application/x-suggestions+json"
        if route.route.suggest_format == "opensearch"
        else "application/json",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", **_OWN},
    )


def _intervene(
    engine: Engine,
    request: web.Request,
    route: CompiledRoute,
    match: Match,
    target: str,
    text: str,
    body: bytes | None,
) -> web.StreamResponse:
    assert engine.chooser is not None
    assert engine.tokens is not None
    language = engine.pages.choose_language(match.language, request.headers.get("Accept-Language"))
    variant = engine.chooser.choose()
    engine.counts.intervention(match.category, match.action.value, language, variant)
    if route.route.kind == "autocomplete":
        return _suggestions(route)
    if match.action is Action.WARN:
        form = None
        if body is not None:
            form = (request.headers.get("Content-Type", ""), body)
        if request.method in ("GET", "HEAD") or (form is not None and len(body or b"") <= 4096):
            sealed = engine.tokens.seal(route.name, target, text, form=form)
            href = f"{INTERNAL_PREFIX}continue/{sealed}"
            if len(href) <= _MAX_CONTINUE_LINK:  # a longer link could not be followed: block
                page = engine.pages.warn(language, variant, href, post=form is not None)
                return _respond(page, engine.config.block_status)
    return _respond(engine.pages.block(language, variant), engine.config.block_status)


async def _internal(engine: Engine, request: web.Request, path: str) -> web.StreamResponse:
    assert engine.tokens is not None
    rest = path[len(INTERNAL_PREFIX) :]
    kind, _, arg = rest.partition("/")
    no_store = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
    if kind == "go" and arg:
        variant = request.query.get("v", "")
        target = engine.pages.link_target(arg, language=request.query.get("l"), variant=variant)
        if target is None:
            return _error(engine, request, 404)
        engine.counts.clicks.labels(
            arg, variant if variant in engine.pages.variants else "unknown"
        ).inc()
        return web.Response(status=303, headers={"Location": target, **no_store, **_OWN})
    if kind == "continue" and arg:
        continuation = engine.tokens.open(arg)
        if continuation is None:
            return _error(engine, request, 400)
        if continuation.form is not None:  # a POST search, replayed as it was sent
            if request.method != "POST":  # only the page's button replays it, never a link
                return _error(engine, request, 405)
            content_type, body = continuation.form
            return await _forward(
                engine, request, continuation.target, body, method="POST", content_type=content_type
            )
        headers = {"Location": continuation.target, **no_store, **_OWN}
        return web.Response(status=303, headers=headers)
    return _error(engine, request, 404)


async def handle(request: web.Request) -> web.StreamResponse:
    """Every public request: internal pages, decisions on search routes, or forwarding."""
    engine = request.app[ENGINE]
    rules = engine.rules  # one rule set for the whole request, even across a reload
    limits = engine.config.limits
    target = request.raw_path
    if len(target) > limits.request_target:
        return _error(engine, request, 414)
    if sum(len(k) + len(v) + 4 for k, v in request.raw_headers) > limits.headers:
        return _error(engine, request, 431)
    if not target.startswith("/"):
        return _error(engine, request, 400)  # absolute-form or asterisk targets: not for us
    path, _, query_string = target.partition("?")
    if path.startswith(INTERNAL_PREFIX):
        return await _internal(engine, request, path)

    body: bytes | None = None
    found = find_route(engine.routes, path)
    if found is not None:
        route, path_match = found
        engine.counts.search(route.name)
        try:
            texts = texts_from_target(route, path_match, query_string)
        except UnreadableBody:
            return _error(engine, request, 400)  # more query values than are searched
        if any(len(t) > limits.query for t in texts):
            return _error(engine, request, 414)
        if route.reads_body_for(request.method) and request.body_exists:
            if request.headers.get("Content-Encoding", "identity").lower() != "identity":
                return _error(engine, request, 415)  # a compressed search body could hide a query
            declared = request.content_length
            body = None if declared is not None and declared > limits.body else (
                await _read_bounded(request, limits.body)
            )  # fmt: skip
            if body is None:
                return _error(engine, request, 413)
            try:
                body_texts = texts_from_body(route, request.headers.get("Content-Type", ""), body)
            except UnreadableBody:
                return _error(engine, request, 415)
            if any(len(t) > limits.query for t in body_texts):
                return _error(engine, request, 413)
            texts += body_texts
        token = None
        if TOKEN_PARAM in query_string:
            target, token = strip_param(target, TOKEN_PARAM)
        decided = decide(rules, texts)
        if decided is not None:
            match, text = decided
            assert engine.tokens is not None
            # a token lifts a warn only when it was issued for every warned text here
            acknowledged = (
                match.action is Action.WARN
                and token is not None
                and all(
                    engine.tokens.verify(token, route.name, [t])
                    for t in texts
                    if (m := rules.match(t)) is not None and m.action is Action.WARN
                )
            )
            if match.action is Action.SHADOW:
                # counted, never shown: the searcher gets results as usual
                engine.counts.intervention(
                    match.category, match.action.value, match.language, "none"
                )
            elif not acknowledged:  # an acknowledged warn was counted when it was shown
                return _intervene(engine, request, route, match, target, text, body)
    return await _forward(engine, request, target, body)


async def _forward(
    engine: Engine,
    request: web.Request,
    target: str,
    body: bytes | None,
    *,
    method: str | None = None,
    content_type: str | None = None,
) -> web.StreamResponse:
    assert engine.session is not None
    assert engine.client_timeout is not None
    return await forward(
        engine.session,
        engine.config,
        engine.client_timeout,
        request,
        target,
        body,
        lambda status: _error(engine, request, status),
        method=method,
        content_type=content_type,
    )


async def _start_session(app: web.Application) -> AsyncIterator[None]:
    engine = app[ENGINE]
    engine.session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=30, ttl_dns_cache=60),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),  # never share one searcher's cookies with another
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),  # send as received
        trust_env=False,
    )
    yield
    await engine.session.close()


async def _expect(request: web.Request) -> web.StreamResponse | None:
    """`Expect: 100-continue`: a search body over the limit is refused before it is sent."""
    engine = request.app[ENGINE]
    path = request.raw_path.partition("?")[0]
    declared = request.content_length
    if (
        declared is not None
        and declared > engine.config.limits.body
        and (found := find_route(engine.routes, path)) is not None
        and found[0].reads_body_for(request.method)
    ):
        return _error(engine, request, 413)
    if request.headers.get("Expect", "").lower() != "100-continue":
        return _error(engine, request, 417)
    if request.version >= aiohttp.HttpVersion11:
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0
    return None


def build_app(engine: Engine) -> web.Application:
    """The public application: every method and path goes to `handle`."""
    scrub_aiohttp_logs()
    app = web.Application(client_max_size=engine.config.limits.body)
    app[ENGINE] = engine
    app.cleanup_ctx.append(_start_session)
    app.router.add_route("*", "/{tail:.*}", handle, expect_handler=_expect)
    return app
