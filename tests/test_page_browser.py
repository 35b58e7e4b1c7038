"""The deterrence page in a real browser: Debian's headless Chromium.

Chromium's headless screenshot and DOM dump stop working when JavaScript is switched off
(`--blink-settings=scriptEnabled=false` yields no output), so the browser runs with its
default settings; the page's `Content-Security-Policy: default-src 'none'` forbids every
script, which the test asserts, so the page renders as it would with JavaScript disabled.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import struct
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from intercept.config import load_config
from intercept.pages import Pages, load_pages
from tests.cdp import AXE_VERSION, Browser, axe_source
from tests.upstream import Proxy, fetch, running_proxy

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]  # fmt: skip


async def _chromium(*args: str, profile: str) -> bytes:
    assert CHROMIUM is not None
    process = await asyncio.create_subprocess_exec(
        CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    stdout, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return stdout


@pytest.mark.parametrize("width", [320, 1024])
async def test_page_renders_text_and_links_without_javascript(proxy: Proxy, width: int) -> None:
    base, _ = proxy
    url = f"{base}/search?q=blocked+example"
    _, headers, _ = await fetch("GET", url)
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "script-src" not in headers["Content-Security-Policy"]
    with tempfile.TemporaryDirectory() as profile:
        dom = (await _chromium("--dump-dom", url, profile=profile)).decode()
        shot = Path(profile) / "page.png"
        await _chromium(f"--screenshot={shot}", f"--window-size={width},900", url, profile=profile)
        png = shot.read_bytes()
    assert "<script" not in dom
    assert "<h1>" in dom
    assert "Confidential help" in dom or "help" in dom.lower()
    assert dom.count('href="/_intercept/go/') >= 3
    assert "blocked example" not in dom
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    png_width, png_height = struct.unpack(">II", png[16:24])
    assert (png_width, png_height) == (width, 900)
    assert len(png) > 5_000  # text was drawn: a blank page compresses to a few hundred bytes


async def test_the_survey_form_renders_as_a_plain_form(upstream: TestServer) -> None:
    """With survey questions the page shows them as radio groups in a form that posts to
    this site, and nothing of the search; the browser draws it without JavaScript."""
    example = Path(__file__).parent.parent / "messages" / "examples" / "survey.yaml"
    survey = yaml.safe_load(example.read_text(encoding="utf-8"))["survey"]
    async with running_proxy(f"http://127.0.0.1:{upstream.port}", survey=survey) as (base, _):
        url = f"{base}/search?q=blocked+example"
        with tempfile.TemporaryDirectory() as profile:
            dom = (await _chromium("--dump-dom", url, profile=profile)).decode()
    assert '<form method="post" action="/_intercept/answer">' in dom
    assert dom.count('type="radio"') == 7  # the example's 4 + 3 options
    assert dom.count("<fieldset") == 2
    assert "What brought you to search for this?" in dom
    assert "blocked example" not in dom


# --- layout, forced colours, focus and axe, measured in the browser over DevTools ----------

MESSAGES = Path(__file__).resolve().parent.parent / "messages"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
FOCUS_RING = 5  # px beyond the element: outline 3px at offset 2px (the template's :focus-visible)


@pytest.fixture(scope="module")
def page_sets() -> dict[str, Pages]:
    """The shipped pages, plain and asking the example questionnaire."""
    example = MESSAGES / "examples" / "survey.yaml"
    survey = yaml.safe_load(example.read_text(encoding="utf-8"))["survey"]
    questions = load_config(None, environ={}, overrides={"survey": survey}).survey.questions
    return {
        "plain": load_pages(MESSAGES, survey_url="https://survey.example/s"),
        "asking": load_pages(MESSAGES, survey_url="https://survey.example/s", questions=questions),
    }


@pytest.fixture
async def page_server(page_sets: dict[str, Pages]) -> AsyncIterator[str]:
    """A loopback server answering `/<set>/<kind>/<language>/<variant>` with that prebuilt page
    and its real headers (CSP included); kind is block, warn or warn-post."""

    async def page(request: web.Request) -> web.Response:
        pages = page_sets[request.match_info["set"]]
        kind, language = request.match_info["kind"], request.match_info["language"]
        variant = request.match_info["variant"]
        token = "t0" if pages.asks else None
        if kind == "block":
            shown = pages.block(language, variant, answer_token=token)
        else:
            post = kind == "warn-post"
            shown = pages.warn(language, variant, "/search?page=2", post=post, answer_token=token)
        return web.Response(body=shown.body, headers=dict(shown.headers))

    app = web.Application()
    app.router.add_get("/{set}/{kind}/{language}/{variant}", page)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()


def _paths(pages: Pages, every_variant: tuple[str, ...] = ()) -> list[str]:
    """Page paths to look at: every language's block page (in every variant for the languages
    in `every_variant`, else in one) and its warn pages with a link and with a button."""
    found = []
    for language in pages.languages:
        variants = pages.variants if language in every_variant else pages.variants[:1]
        found += [f"block/{language}/{variant}" for variant in variants]
        found += [f"warn/{language}/neutral", f"warn-post/{language}/help"]
    return found


@pytest.mark.parametrize("width", [320, 360])
async def test_no_page_scrolls_sideways_on_a_phone(
    page_server: str, page_sets: dict[str, Pages], width: int
) -> None:
    """WCAG 1.4.10 reflow: no language's page, with a long onion address or a long resource
    name among its help links, is wider than a phone's screen."""
    async with Browser() as browser:
        await browser.viewport(width, 740)
        wide, onions = [], 0
        for path in [*_paths(page_sets["plain"]), "asking/block/en/harm"]:
            url = f"{page_server}/{path}" if path.startswith("asking") else \
                f"{page_server}/plain/{path}"  # fmt: skip
            await browser.open(url)
            scroll = await browser.evaluate("document.documentElement.scrollWidth")
            if scroll > width:
                wide.append((path, scroll))
            onions += await browser.evaluate("document.body.textContent.includes('.onion')")
    assert wide == []
    assert onions >= 4  # pages with the long ReDirection onion address were among them


async def test_buttons_stay_buttons_in_forced_colours(page_server: str) -> None:
    """In forced-colours mode (Windows high contrast) backgrounds are dropped: every button
    keeps a visible border, so the survey button still looks like one."""
    async with Browser() as browser:
        await browser.media(forced_colors="active")
        seen = 0
        for path in ("asking/block/en/harm", "plain/warn-post/en/legal", "plain/block/de/help"):
            await browser.open(f"{page_server}/{path}")
            assert await browser.evaluate("matchMedia('(forced-colors: active)').matches")
            borders = await browser.evaluate(
                "[...document.querySelectorAll('.button')].map(b => {"
                "const s = getComputedStyle(b); return [s.borderTopStyle, s.borderTopWidth,"
                " s.borderBottomStyle, s.borderBottomWidth]})"
            )
            assert borders, path
            for top_style, top_width, bottom_style, bottom_width in borders:
                assert top_style == bottom_style == "solid", (path, borders)
                assert float(top_width.removesuffix("px")) >= 1, path
                assert float(bottom_width.removesuffix("px")) >= 1, path
            seen += len(borders)
        await browser.media()
        await browser.open(f"{page_server}/plain/block/en/harm")
        assert not await browser.evaluate("matchMedia('(forced-colors: active)').matches")
    assert seen >= 4  # asking: the form's button and the survey link; then one each


FOCUSED = """(() => { const e = document.activeElement; const r = e.getBoundingClientRect();
return [e.tagName, (e.textContent || e.value || '').trim().slice(0, 40), r.top, r.bottom,
r.left, r.right, innerWidth, innerHeight, e === document.body]; })()"""


@pytest.mark.parametrize("path", ["plain/block/en/harm", "plain/warn/en/legal",
                                  "asking/warn-post/fi/help"])  # fmt: skip
async def test_the_focus_ring_is_never_cut_off(page_server: str, path: str) -> None:
    """Tabbing through a page on a phone-sized screen, every focused element's ring (outline
    3px at 2px) is on screen whole: the browser scrolls the element into view, and the
    template's scroll margin leaves room for the ring, down to the last help link."""
    async with Browser() as browser:
        await browser.viewport(360, 640)
        await browser.open(f"{page_server}/{path}")
        focusable = await browser.evaluate(  # a group of radio buttons is one stop
            "document.querySelectorAll('a[href], button').length + new Set([...document"
            ".querySelectorAll('input[type=radio]')].map(i => i.name)).size"
        )
        cut = []
        for _ in range(focusable):
            await browser.press_tab()
            tag, text, top, bottom, left, right, width, height, body = await browser.evaluate(
                FOCUSED
            )
            assert not body, "focus left the page before every element was reached"
            ring = (top - FOCUS_RING, bottom + FOCUS_RING, left - FOCUS_RING, right + FOCUS_RING)
            if ring[0] < 0 or ring[1] > height or ring[2] < 0 or ring[3] > width:
                cut.append((tag, text, [round(v) for v in ring], (width, height)))
    assert focusable >= 8
    assert cut == []


AXE = axe_source()


@pytest.mark.skipif(
    AXE is None, reason=f"axe-core is not installed: npm install -g axe-core@{AXE_VERSION}"
)
@pytest.mark.parametrize("width", [360, 1280])
async def test_axe_finds_no_violation(
    page_server: str, page_sets: dict[str, Pages], width: int
) -> None:
    """axe-core (WCAG 2.0-2.2 A and AA rules, and best practices) over every language's block
    page (every variant in English and in a right-to-left language: only the texts differ),
    warn pages with a link and with a button, and pages asking questions; axe is injected over
    DevTools, so the pages keep their real CSP."""
    assert AXE is not None
    languages = page_sets["plain"].languages
    rtl = [language for language in languages if language in ("ar", "fa", "he", "ur")][:1]
    paths = [f"plain/{p}" for p in _paths(page_sets["plain"], every_variant=("en", *rtl))]
    paths += ["asking/block/en/harm", "asking/warn-post/pl/neutral"]
    run = f"axe.run(document, {{runOnly: {{type: 'tag', values: {json.dumps(AXE_TAGS)}}}}})" + \
        ".then(r => [r.testEngine.version, r.passes.length, r.violations.map(v => " \
        "[v.id, v.impact, v.nodes.map(n => n.target.join(' ')).slice(0, 3)])])"  # fmt: skip
    violations = {}
    async with Browser() as browser:
        await browser.viewport(width, 800)
        for path in paths:
            await browser.open(f"{page_server}/{path}")
            await browser.evaluate(AXE)
            version, passes, found = await browser.evaluate(run)
            assert passes >= 10, path  # axe ran its rules
            if found:
                violations[path] = found
    assert version.startswith("4.")
    assert violations == {}
