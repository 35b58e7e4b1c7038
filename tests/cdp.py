"""A headless Chromium driven over the DevTools protocol, for tests that look at a page as a
browser lays it out: sizes, computed styles, focus, and an axe-core audit.

Chromium listens for DevTools on a loopback port of its choosing (`--remote-debugging-port=0`,
read back from its stderr); one page target is driven over a WebSocket with aiohttp's client.
`Runtime.evaluate` runs in the page but is not subject to its Content-Security-Policy, so a
page keeps its real headers (no script allowed) while a test measures it or injects axe-core.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
AXE_VERSION = "4.14.1"  # what `npm install -g axe-core@4.14.1` installs; the tests were run with it
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
)  # fmt: skip
_LISTENING = re.compile(rb"DevTools listening on (ws://127\.0\.0\.1:\d+/\S+)")


def axe_source() -> str | None:
    """axe-core's `axe.min.js` installed by npm (globally, or where `INTERCEPT_AXE_JS` says);
    None where it is not installed."""
    named = os.environ.get("INTERCEPT_AXE_JS")
    candidates = [Path(named)] if named else []
    npm = shutil.which("npm")
    if npm is not None:
        root = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=30)
        candidates.append(Path(root.stdout.strip()) / "axe-core" / "axe.min.js")
    candidates.append(Path("/usr/lib/node_modules/axe-core/axe.min.js"))
    for path in candidates:
        if path.is_file():
            return path.read_text("utf-8")
    return None


class CDPError(RuntimeError):
    """The browser answered a command with an error, or a script in the page threw."""


class Browser:
    """`async with Browser() as browser:` a fresh headless Chromium with one page, stopped and
    its profile removed on exit."""

    def __init__(self) -> None:
        if CHROMIUM is None:
            raise RuntimeError("chromium is not installed")
        self._profile = tempfile.TemporaryDirectory()
        self._process: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Browser:
        assert CHROMIUM is not None
        self._process = await asyncio.create_subprocess_exec(
            CHROMIUM, *FLAGS, f"--user-data-dir={self._profile.name}", "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self._process.stderr is not None
        browser_url = await asyncio.wait_for(self._listening(self._process.stderr), timeout=30)
        base = browser_url.split("/devtools/", 1)[0].replace("ws://", "http://")
        self._session = aiohttp.ClientSession()
        async with self._session.get(f"{base}/json/list") as response:
            targets = await response.json()
        page = next(t for t in targets if t["type"] == "page")
        self._socket = await self._session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.call("Page.enable")
        return self

    @staticmethod
    async def _listening(stderr: asyncio.StreamReader) -> str:
        while line := await stderr.readline():
            found = _LISTENING.search(line)
            if found:
                return found.group(1).decode("ascii")
        raise RuntimeError("chromium exited before it listened for DevTools")

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._session is not None:
            await self._session.close()
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), timeout=10)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        self._profile.cleanup()

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command and its result (events that arrive meanwhile are dropped)."""
        assert self._socket is not None
        number = next(self._ids)
        await self._socket.send_json({"id": number, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self._socket.receive(), timeout=60)
            if message.type != aiohttp.WSMsgType.TEXT:
                raise CDPError(f"the DevTools connection ended: {message.type}")
            answer = json.loads(message.data)
            if answer.get("id") == number:
                if "error" in answer:
                    raise CDPError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer["result"]
                return result

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = await self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise CDPError(str(result["exceptionDetails"]))
        return result["result"].get("value")

    async def viewport(self, width: int, height: int) -> None:
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width, height=height, deviceScaleFactor=1, mobile=width < 600,
        )  # fmt: skip

    async def media(self, **features: str) -> None:
        """Emulate CSS media features, e.g. `forced_colors="active"` (none: back to normal)."""
        listed = [{"name": k.replace("_", "-"), "value": v} for k, v in features.items()]
        await self.call("Emulation.setEmulatedMedia", features=listed)

    async def open(self, url: str) -> None:
        """Go to `url` and wait until its document has loaded."""
        await self.call("Page.navigate", url=url)
        for _ in range(200):
            if await self.evaluate(f"location.href === {json.dumps(url)} && "
                                   "document.readyState === 'complete'"):  # fmt: skip
                return
            await asyncio.sleep(0.05)
        raise CDPError(f"{url} did not load in 10 s")

    async def press_tab(self) -> None:
        for kind in ("keyDown", "keyUp"):
            await self.call("Input.dispatchKeyEvent", type=kind, key="Tab", code="Tab",
                            windowsVirtualKeyCode=9)  # fmt: skip
