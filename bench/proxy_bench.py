"""Proxy benchmark: Intercept against a bare aiohttp pass-through, same machine, same run.

Usage: python bench/proxy_bench.py [--rules 50000] [--seconds 10] [--connections 32]

Starts, each in its own process on loopback: an upstream that answers a small results page,
a bare aiohttp pass-through proxy with no matching (the baseline), Intercept with N synthetic
rules, and a trivial aiohttp handler. `wrk` (Debian package) loads each for the same time:
benign searches through both proxies, then the deterrence page against the trivial handler.
Prints requests per second and the two ratios the targets name.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _upstream(port: int) -> None:
    body = b"<!doctype html><title>results</title>" + b"<p>result</p>" * 50

    async def results(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", results)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def _bare_proxy(port: int, upstream: int, settle: bool = False) -> None:
    """The baseline: a minimal correct pass-through with aiohttp's pooled client: request and
    response headers passed on less the fixed hop-by-hop set, bodies streamed; no matching, no
    limits, no forwarded headers, no timeouts of its own. With `settle`, the same garbage
    collector settings as `intercept serve` (a second, stricter baseline)."""
    if settle:
        from intercept.serve import settle_heap

        settle_heap()
    hop = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
           "proxy-authorization", "proxy-authenticate", "host"}  # fmt: skip

    async def start(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(auto_decompress=False)

    async def forward(request: web.Request) -> web.StreamResponse:
        session: aiohttp.ClientSession = request.app["session"]
        url = f"http://127.0.0.1:{upstream}{request.raw_path}"
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in hop]
        data = request.content if request.body_exists else None
        async with session.request(
            request.method, url, headers=headers, data=data, allow_redirects=False
        ) as up:
            response = web.StreamResponse(status=up.status)
            for name, value in up.headers.items():
                if name.lower() not in hop:
                    response.headers.add(name, value)
            await response.prepare(request)
            async for chunk in up.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application()
    app.on_startup.append(start)
    app.router.add_route("*", "/{tail:.*}", forward)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def _trivial(port: int) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def _intercept(port: int, upstream: int, rules_file: str) -> None:
    from intercept.config import load_config
    from intercept.serve import run

    config = load_config(
        None,
        environ={},
        overrides={
            "listen": f"127.0.0.1:{port}",
            "upstream": f"http://127.0.0.1:{upstream}",
            "rules": rules_file,
            "messages": str(ROOT / "messages"),
            "ledger": {"url": f"sqlite:{Path(rules_file).parent / 'ledger.db'}"},
            "admin_listen": f"127.0.0.1:{_free_port()}",
        },
    )
    run(config)


def _write_rules(count: int, folder: Path) -> str:
    from intercept.bench import make_rules

    rules = [
        {"id": s.id, "action": s.action.value, "terms": list(s.terms) or [f"{s.id.lower()} x"]}
        for s in make_rules(count)
    ]
    path = folder / "bench.yaml"
    document = {
        "list": {"name": "bench", "source": "synthetic", "updated": "2026-11-29"},
        "defaults": {"category": "bench", "action": "block", "language": "en"},
        "rules": rules,
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return str(path)


def _wait(port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


def _wrk(url: str, seconds: int, connections: int) -> float:
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    )  # fmt: skip
    found = re.search(r"Requests/sec:\s+([0-9.]+)", done.stdout)
    if not found:
        raise SystemExit(done.stdout + done.stderr)
    return float(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=50_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    names = ("upstream", "bare", "settled", "intercept", "trivial")
    ports = {name: _free_port() for name in names}
    with tempfile.TemporaryDirectory() as folder:
        rules_file = _write_rules(args.rules, Path(folder))
        procs = [
            multiprocessing.Process(target=_upstream, args=(ports["upstream"],)),
            multiprocessing.Process(target=_bare_proxy, args=(ports["bare"], ports["upstream"])),
            multiprocessing.Process(
                target=_bare_proxy, args=(ports["settled"], ports["upstream"], True)
            ),
            multiprocessing.Process(
                target=_intercept, args=(ports["intercept"], ports["upstream"], rules_file)
            ),
            multiprocessing.Process(target=_trivial, args=(ports["trivial"],)),
        ]
        for proc in procs:
            proc.start()
        try:
            for port in ports.values():
                _wait(port)
            benign = "/search?q=cheap+flights+to+helsinki+in+march"

            def wrk(url: str) -> float:
                return _wrk(url, args.seconds, args.connections)

            bare = wrk(f"http://127.0.0.1:{ports['bare']}{benign}")
            through = wrk(f"http://127.0.0.1:{ports['intercept']}{benign}")
            settled = wrk(f"http://127.0.0.1:{ports['settled']}{benign}")
            trivial = wrk(f"http://127.0.0.1:{ports['trivial']}/")
            from intercept.bench import make_rules
            from intercept.rulespec import Action

            blocking = next(
                r for r in make_rules(args.rules) if r.terms and r.action is Action.BLOCK
            )
            phrase = blocking.terms[0].replace(" ", "+")
            page = f"/search?q={phrase}"
            pages = wrk(f"http://127.0.0.1:{ports['intercept']}{page}")
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.join(10)
    print(f"machine: {os.cpu_count()} cores; rules loaded: {args.rules:,}; "
          f"wrk 1 thread, {args.connections} connections, {args.seconds} s each")  # fmt: skip
    print(f"benign searches, bare aiohttp pass-through: {bare:,.0f} req/s")
    print(f"benign searches, Intercept proxy:           {through:,.0f} req/s "
          f"(ratio {through / bare:.2f}, target >= 0.90)")  # fmt: skip
    print(f"bare pass-through, Intercept's GC settings: {settled:,.0f} req/s "
          f"(Intercept's ratio to it {through / settled:.2f})")  # fmt: skip
    print(f"trivial aiohttp handler:                    {trivial:,.0f} req/s")
    print(f"deterrence page from Intercept:             {pages:,.0f} req/s "
          f"(ratio {pages / trivial:.2f}, target >= 0.80)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
