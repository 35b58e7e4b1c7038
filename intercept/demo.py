"""`intercept demo`: a small search site on loopback with Intercept in front of it.

The demo site has a home page with a GET search form and a POST search form, a results page
with made-up results, an autocomplete endpoint and a stand-in survey page. Intercept proxies it
with the demo rules (`rules/demo.yaml`) and the default pages, both built into the package, so
a new user sees every decision in a browser from any folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import secrets
import signal
import socket

from aiohttp import web

from intercept.config import Config, load_config
from intercept.preflight import ListenError, check_listeners
from intercept.resources import DEMO_RULES

__all__ = ["demo_site", "run_demo"]

_STYLE = (
    "body{font:1rem/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}"
    "input,button{font:inherit;padding:.4rem}form{margin:1rem 0}li{margin:.5rem 0}"
)
_WORDS = ["teapot", "lantern", "kite", "quilt", "garden", "recipe", "map", "river", "museum"]


def _page(title: str, body: str) -> web.Response:
    return web.Response(
        text=f"<!doctype html><html lang=en><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>{title}</title><style>{_STYLE}</style><body>{body}</body></html>",
        content_type="text/html",
    )


_FORMS = (
    "<form action=/search method=get role=search><label>Search (GET) "
    "<input name=q autofocus></label> <button>Search</button></form>"
    "<form action=/search method=post role=search><label>Search (POST) "
    "<input name=q></label> <button>Search</button></form>"
)


async def _home(request: web.Request) -> web.Response:
    return _page(
        "Demo search",
        "<h1>Demo search</h1><p>A made-up search site. Intercept sits in front of it.</p>" + _FORMS,
    )


async def _search(request: web.Request) -> web.Response:
    if request.method == "POST":
        form = await request.post()
        query = str(form.get("q", ""))
    else:
        query = request.query.get("q", "")
    shown = html.escape(query)
    items = "".join(
        f"<li><a href='#'>{shown} {word}</a><br>A made-up result about {word}s.</li>"
        for word in _WORDS[: 3 + len(query) % 5]
    )
    return _page(
        f"{shown} - Demo search",
        f"<h1>Results for “{shown}”</h1>{_FORMS}<ol>{items}</ol>",
    )


async def _autocomplete(request: web.Request) -> web.Response:
    query = request.query.get("q", "")
    words = [f"{query} {word}" for word in _WORDS[:5]] if query else []
    return web.json_response(words)


async def _survey(request: web.Request) -> web.Response:
    params = html.escape(json.dumps(dict(request.query)))
    return _page(
        "Survey (demo)",
        "<h1>Survey (stand-in)</h1><p>In a deployment this link goes to the research "
        f"survey. It received only these parameters: <code>{params}</code></p>",
    )


def demo_site() -> web.Application:
    """The demo search site (the upstream)."""
    app = web.Application()
    app.router.add_get("/", _home)
    app.router.add_route("*", "/search", _search)
    app.router.add_get("/autocomplete", _autocomplete)
    app.router.add_get("/survey", _survey)
    return app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def demo_config(listen: str, upstream_port: int) -> Config:
    """The proxy configuration of the demo: demo rules, built-in pages, local survey."""
    return load_config(
        None,
        environ={},
        overrides={
            "listen": listen,
            "upstream": f"http://127.0.0.1:{upstream_port}",
            "rules": str(DEMO_RULES),
            "survey_url": f"http://127.0.0.1:{upstream_port}/survey",
            "warn": {"secret": secrets.token_hex(16)},  # one process: a fresh key will do
            "admin_listen": f"127.0.0.1:{_free_port()}",
            "ledger": {"url": None},  # the demo keeps no files
        },
    )


async def _run(listen: str) -> None:
    from intercept.server.serve import build_engine, start, start_admin

    upstream_port = _free_port()
    site_runner = web.AppRunner(demo_site(), access_log=None)
    await site_runner.setup()
    await web.TCPSite(site_runner, "127.0.0.1", upstream_port).start()
    config = demo_config(listen, upstream_port)
    engine = build_engine(config)
    proxy_runner = await start(config, engine)
    admin_runner = await start_admin(config, engine)
    base = f"http://{listen}"
    print(f"Demo search site behind Intercept: {base}/")
    print(f"  benign:    {base}/search?q=teapot+museum")
    print(f"  blocked:   {base}/search?q=blocked+example")
    print(f"  disguised: {base}/search?q=bl0cked-ex4mple")
    print(f"  warned:    {base}/search?q=purple+teapot")
    print(f"  autocomplete: {base}/autocomplete?q=zebra+quilt")
    print(f"Aggregate counts (Prometheus): http://{config.admin_listen}/metrics")
    print("Press Ctrl-C to stop.", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await proxy_runner.cleanup()
        await admin_runner.cleanup()
        await site_runner.cleanup()
        print("Stopped.")


def run_demo(listen: str = "127.0.0.1:8080") -> None:
    """Run the demo until Ctrl-C. An address in use is refused first, with the way out."""
    config = load_config(None, environ={}, overrides={"listen": listen})
    try:
        check_listeners(config.model_copy(update={"admin_listen": "127.0.0.1:0"}))
    except ListenError:
        raise ListenError(f"{listen} is in use; choose another with --listen") from None
    asyncio.run(_run(listen))
