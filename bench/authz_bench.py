"""Decision-service benchmark: nginx + Intercept against nginx + a trivial auth service.

Usage: python bench/authz_bench.py [--rules 50000] [--seconds 10] [--connections 32]

Starts on loopback, each in its own process: an upstream that answers a small results page,
Intercept's decision service (`mode: authz`) with N synthetic rules, a trivial aiohttp auth
service that answers 204 to everything, and one nginx (Debian package) with two servers that
differ only in the service their `auth_request` asks. `wrk` (Debian package) loads both with
the same benign search for the same time, and then both once more in reverse order.
Prints requests per second and the ratio the target names.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.proxy_bench import _free_port, _upstream, _wait, _write_rules, _wrk  # noqa: E402

NGINX_CONF = """
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream search {{ server 127.0.0.1:{upstream}; keepalive 64; }}
    upstream intercept {{ server 127.0.0.1:{intercept}; keepalive 64; }}
    upstream trivial {{ server 127.0.0.1:{trivial}; keepalive 64; }}
{servers}
}}
"""

SERVER = """
    server {{
        listen 127.0.0.1:{port};
        location = /search {{
            auth_request /_auth;
            proxy_pass http://search;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location = /_auth {{
            internal;
            proxy_pass http://{service}/_intercept/auth-request;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
        }}
    }}
"""


def _trivial_auth(port: int) -> None:
    async def allow(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", allow)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def _intercept(port: int, rules_file: str) -> None:
    from intercept.config import load_config
    from intercept.server.serve import run

    config = load_config(
        None,
        environ={},
        overrides={
            "listen": f"127.0.0.1:{port}",
            "mode": "authz",
            "rules": rules_file,
            "messages": str(ROOT / "messages"),
            "ledger": {"url": f"sqlite:{Path(rules_file).parent / 'ledger.db'}"},
            "admin_listen": f"127.0.0.1:{_free_port()}",
            "warn": {"secret": "benchmark-secret-0123456789"},
        },
    )
    run(config)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=50_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx) or not shutil.which("wrk"):
        raise SystemExit("needs Debian's nginx and wrk: apt-get install nginx wrk")
    names = ("upstream", "intercept", "trivial", "front_intercept", "front_trivial")
    ports = {name: _free_port() for name in names}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        rules_file = _write_rules(args.rules, tmp)
        servers = SERVER.format(port=ports["front_intercept"], service="intercept")
        servers += SERVER.format(port=ports["front_trivial"], service="trivial")
        conf = tmp / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                tmp=tmp,
                upstream=ports["upstream"],
                intercept=ports["intercept"],
                trivial=ports["trivial"],
                servers=servers,
            )
        )
        procs = [
            multiprocessing.Process(target=_upstream, args=(ports["upstream"],)),
            multiprocessing.Process(target=_intercept, args=(ports["intercept"], rules_file)),
            multiprocessing.Process(target=_trivial_auth, args=(ports["trivial"],)),
        ]
        for proc in procs:
            proc.start()
        front = subprocess.Popen(
            [nginx, "-p", str(tmp), "-c", str(conf), "-g", "daemon off;"],
            stderr=subprocess.DEVNULL,
        )
        try:
            for port in ports.values():
                _wait(port)
            benign = "/search?q=cheap+flights+to+helsinki+in+march"
            results: dict[str, list[float]] = {"intercept": [], "trivial": []}
            for order in (("trivial", "intercept"), ("intercept", "trivial")):
                for name in order:
                    url = f"http://127.0.0.1:{ports['front_' + name]}{benign}"
                    results[name].append(_wrk(url, args.seconds, args.connections))
        finally:
            front.terminate()
            front.wait(10)
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.join(10)
    ours, theirs = sum(results["intercept"]), sum(results["trivial"])
    print(f"machine: {os.cpu_count()} cores; rules loaded: {args.rules:,}; nginx 1 worker; "
          f"wrk 1 thread, {args.connections} connections, {args.seconds} s x 2 each")  # fmt: skip
    print("benign searches, nginx + trivial 204 auth service: "
          + ", ".join(f"{r:,.0f}" for r in results["trivial"]) + " req/s")  # fmt: skip
    print("benign searches, nginx + Intercept decision service: "
          + ", ".join(f"{r:,.0f}" for r in results["intercept"]) + " req/s")  # fmt: skip
    print(f"ratio {ours / theirs:.2f} (target >= 0.90)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
