"""What the WSGI and ASGI middleware tests share: an engine, a bounded client, page readers.

The applications and servers (Flask on waitress or wsgiref, Starlette on uvicorn) live in the
test modules; everything here is framework-neutral.
"""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path
from typing import Any

import aiohttp

from intercept.config import load_config
from intercept.core import Engine
from intercept.pages import pages_for
from intercept.research.counting import Counts
from tests.upstream import RULES, fetch

ROOT = Path(__file__).parent.parent
TIMEOUT = aiohttp.ClientTimeout(total=15)
"""Every request of these tests ends within this, answered or not."""
SERVER_TIMEOUT = 10
"""Seconds a test server may take to start or to stop."""

CANARY = "canaryzebra"
CANARY_HEADERS = {"User-Agent": f"{CANARY}-agent/1.0", "Cookie": f"session={CANARY}cookie"}
FORM = "application/x-www-form-urlencoded"

Response = tuple[int, Any, bytes]


def make_engine(**settings: Any) -> Engine:
    """An engine over `tests.upstream.RULES` ("blocked example" blocks, "purple teapot" warns,
    "velvet moth" is shadowed) and the repository's pages, with fresh counters."""
    config = load_config(
        None, environ={}, overrides={"messages": str(ROOT / "messages"), **settings}
    )
    pages = pages_for(config)
    return Engine(config=config, rules=RULES, pages=pages, counts=Counts())


async def call(method: str, url: str, **kwargs: Any) -> Response:
    """One request (fresh connection, no redirects followed, nothing decompressed), bounded
    by `TIMEOUT`: (status, headers, body)."""
    return await fetch(method, url, timeout=TIMEOUT, **kwargs)


def interventions(engine: Engine, action: str | None = None) -> float:
    """Interventions counted so far, over every label (or only those with `action`)."""
    total = 0.0
    engine.counts.sync()  # the tallies reach the metric on sync (intercept.research.counting)
    for family in engine.counts.interventions.collect():
        for sample in family.samples:
            wanted = action is None or sample.labels.get("action") == action
            if sample.name.endswith("_total") and wanted:
                total += sample.value
    return total


def counted(engine: Engine, metric: str) -> dict[tuple[str, ...], float]:
    """What counter `metric` (`intercept_<metric>_total`) has counted so far, after a sync:
    its label values, in the counter's order, -> count; labels never counted are absent."""
    engine.counts.sync()
    return {
        tuple(sample.labels.values()): value
        for family in engine.counts.registry.collect()
        if family.name == f"intercept_{metric}"
        for sample in family.samples
        if sample.name.endswith("_total") and (value := sample.value)
    }


def continues(engine: Engine) -> dict[tuple[str, ...], float]:
    """Continues past warn pages counted so far: (category, variant, language) -> count."""
    return counted(engine, "warn_continues")


def variant_of(page: bytes) -> str:
    """The message variant a page shows, from its click-through links (`?v=`)."""
    found: set[str] = set(
        re.findall(r"/_intercept/go/[^\"]*[?&](?:amp;)?v=([a-z0-9_-]+)", page.decode())
    )
    assert len(found) == 1, found
    return found.pop()


def links(body: bytes, prefix: str) -> list[str]:
    """The page's `href`s that start with `prefix`, unescaped."""
    found = re.findall(r'href="(' + re.escape(prefix) + r'[^"]*)"', body.decode())
    return [html.unescape(link) for link in found]


def form_actions(body: bytes) -> list[str]:
    """The page's POST form actions (the warn page's continue button for a POST search)."""
    found = re.findall(r'<form method="post" action="([^"]+)"', body.decode())
    return [html.unescape(action) for action in found]


def logged(records: list[logging.LogRecord]) -> str:
    """Everything a log handler could write from these records, as one text."""
    return "\n".join(
        f"{r.name} {r.levelname} {r.getMessage()} {r.args!r} {r.exc_text or ''} "
        f"{r.stack_info or ''}"
        for r in records
    )


def assert_not_shown(response: Response, *secrets: str) -> None:
    """None of `secrets` is in the response's headers or body."""
    _status, headers, body = response
    shown = "\n".join(f"{k}: {v}" for k, v in headers.items()) + "\n" + body.decode("latin-1")
    for secret in secrets:
        assert secret.lower() not in shown.lower(), secret
