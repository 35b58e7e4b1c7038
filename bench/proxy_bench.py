"""Proxy benchmark: Intercept against a bare aiohttp pass-through, same machine, same run.

Usage: python bench/proxy_bench.py [--rules 50000] [--seconds 10] [--connections 32] [--rounds 2]

Starts, each in its own process on loopback: an upstream that answers a small results page,
a bare aiohttp pass-through proxy with no matching (the baseline), Intercept with N synthetic
rules, a trivial aiohttp handler, and a low-level aiohttp server that sends the page
Intercept answered (same bytes, same headers) with no decision: the floor for any page served
by aiohttp. `wrk` (Debian package) loads each for the same time: benign searches through both
proxies, the deterrence page, the trivial handler and the floor, each `--rounds` times in
alternating order. Prints requests per second (the mean of the runs), each server's CPU time
per request (steadier than throughput on a shared machine), and the two ratios the targets
name.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
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
        from intercept.server.serve import settle_heap

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
            try:
                await response.prepare(request)
                async for chunk in up.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except ConnectionResetError:  # wrk hangs up at the end of a run
                pass
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


def _static_page(port: int, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    """The floor for a page on aiohttp: the bytes and headers Intercept answered, sent by
    aiohttp's low-level server (as Intercept's listener is) with no decision at all."""

    async def page(request: web.BaseRequest) -> web.Response:
        return web.Response(status=status, headers=headers, body=body)

    async def serve() -> None:
        runner = web.ServerRunner(web.Server(page, access_log=None))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    asyncio.run(serve())


def _fetch(url: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers (less those aiohttp sets itself) and body of one GET."""
    with urllib.request.urlopen(url, timeout=30) as answer:
        own = {"content-length", "date", "connection"}
        headers = [(k, v) for k, v in answer.getheaders() if k.lower() not in own]
        return answer.status, headers, answer.read()


def _intercept(port: int, upstream: int, rules_file: str) -> None:
    from intercept.config import load_config
    from intercept.server.serve import run

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
    from intercept.curation.rulebench import make_rules

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


def _wrk_run(url: str, seconds: int, connections: int) -> tuple[float, int]:
    """One wrk run: (requests per second, requests completed)."""
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    )  # fmt: skip
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", done.stdout)
    count = re.search(r"([0-9]+) requests in", done.stdout)
    if not rate or not count:
        raise SystemExit(done.stdout + done.stderr)
    return float(rate.group(1)), int(count.group(1))


def _wrk(url: str, seconds: int, connections: int) -> float:
    return _wrk_run(url, seconds, connections)[0]


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` so far (Linux `/proc/PID/stat`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Tally:
    """Requests per second of each wrk run, and the server's CPU time per request over all."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.rates: list[float] = []
        self.requests = 0
        self.cpu = 0.0

    def run(self, url: str, seconds: int, connections: int) -> None:
        before = _cpu_seconds(self.pid)
        rate, requests = _wrk_run(url, seconds, connections)
        self.cpu += _cpu_seconds(self.pid) - before
        self.rates.append(rate)
        self.requests += requests

    @property
    def rate(self) -> float:
        return sum(self.rates) / len(self.rates)

    @property
    def cpu_us(self) -> float:
        return self.cpu / max(1, self.requests) * 1e6

    def line(self) -> str:
        runs = " / ".join(f"{r:,.0f}" for r in self.rates)
        return f"{self.rate:,.0f} req/s ({runs}); server CPU {self.cpu_us:.0f} µs/request"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=50_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each")
    args = parser.parse_args()
    names = ("upstream", "bare", "settled", "intercept", "trivial", "static")
    ports = {name: _free_port() for name in names}
    with tempfile.TemporaryDirectory() as folder:
        rules_file = _write_rules(args.rules, Path(folder))
        procs = {
            "upstream": multiprocessing.Process(target=_upstream, args=(ports["upstream"],)),
            "bare": multiprocessing.Process(
                target=_bare_proxy, args=(ports["bare"], ports["upstream"])
            ),
            "settled": multiprocessing.Process(
                target=_bare_proxy, args=(ports["settled"], ports["upstream"], True)
            ),
            "intercept": multiprocessing.Process(
                target=_intercept, args=(ports["intercept"], ports["upstream"], rules_file)
            ),
            "trivial": multiprocessing.Process(target=_trivial, args=(ports["trivial"],)),
        }
        for proc in procs.values():
            proc.start()
        try:
            for name, port in ports.items():
                if name != "static":  # started below, with Intercept's page
                    _wait(port)
            from intercept.curation.rulebench import make_rules
            from intercept.rules.rulespec import Action

            blocking = next(
                r for r in make_rules(args.rules) if r.terms and r.action is Action.BLOCK
            )
            benign = "/search?q=cheap+flights+to+helsinki+in+march"
            page = "/search?q=" + blocking.terms[0].replace(" ", "+")
            answered = _fetch(f"http://127.0.0.1:{ports['intercept']}{page}")
            procs["static"] = multiprocessing.Process(
                target=_static_page, args=(ports["static"], *answered)
            )
            procs["static"].start()
            _wait(ports["static"])
            runs = {
                "bare": benign, "intercept": benign, "settled": benign,
                "trivial": "/", "page": page, "static": "/",
            }  # fmt: skip
            tallies = {
                name: _Tally(procs["intercept" if name == "page" else name].pid or 0)
                for name in runs
            }
            for round_ in range(args.rounds):
                order = list(runs) if round_ % 2 == 0 else list(reversed(runs))
                for name in order:
                    port = ports["intercept" if name == "page" else name]
                    url = f"http://127.0.0.1:{port}{runs[name]}"
                    tallies[name].run(url, args.seconds, args.connections)
        finally:
            for proc in procs.values():
                proc.terminate()
            for proc in procs.values():
                proc.join(10)
    bare, ours, settled = tallies["bare"], tallies["intercept"], tallies["settled"]
    trivial, pages, static = tallies["trivial"], tallies["page"], tallies["static"]
    print(f"machine: {os.cpu_count()} cores; rules loaded: {args.rules:,}; wrk 1 thread, "
          f"{args.connections} connections, {args.seconds} s a run, {args.rounds} alternating "
          "runs each")  # fmt: skip
    print(f"benign searches, bare aiohttp pass-through: {bare.line()}")
    print(f"benign searches, Intercept proxy:           {ours.line()}")
    print(f"  ratio {ours.rate / bare.rate:.2f} (target >= 0.90); "
          f"CPU-per-request ratio {bare.cpu_us / ours.cpu_us:.2f}")  # fmt: skip
    print(f"bare pass-through, Intercept's GC settings: {settled.line()}")
    print(f"  Intercept's ratio to it {ours.rate / settled.rate:.2f}")
    print(f"trivial aiohttp handler:                    {trivial.line()}")
    print(f"deterrence page from Intercept:             {pages.line()}")
    print(f"  ratio {pages.rate / trivial.rate:.2f} (target >= 0.80); "
          f"CPU-per-request ratio {trivial.cpu_us / pages.cpu_us:.2f}")  # fmt: skip
    print(f"the same page, low-level server, no decision: {static.line()}")
    print(f"  its ratio to the trivial handler {static.rate / trivial.rate:.2f} (the floor on "
          "aiohttp); Intercept's page to it "
          f"{pages.rate / static.rate:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
