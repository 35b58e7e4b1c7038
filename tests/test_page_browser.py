"""The deterrence page in a real browser: Debian's headless Chromium.

Chromium's headless screenshot and DOM dump stop working when JavaScript is switched off
(`--blink-settings=scriptEnabled=false` yields no output), so the browser runs with its
default settings; the page's `Content-Security-Policy: default-src 'none'` forbids every
script, which the test asserts, so the page renders as it would with JavaScript disabled.
"""

from __future__ import annotations

import asyncio
import shutil
import struct
import tempfile
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestServer

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
