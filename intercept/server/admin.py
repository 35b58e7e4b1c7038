"""The admin listener (`admin_listen`, default 127.0.0.1:9090; never the public address).

- `GET /metrics`: Prometheus text format (summed over workers in multiprocess mode).
- `GET /healthz`: 200 while the process serves.
- `GET /readyz`: 200 when a rule set is loaded and the server is not stopping, else 503
  (while a stop drains requests in flight, load balancers should send no more). The JSON
  body also reports the research ledger. A failing ledger does not fail requests, so by
  default it does not make the instance unready either (a load balancer would take every
  replica out at once when the database is down); `/readyz?ledger=required` answers 503
  while the ledger is failing. Likewise a failing upstream (proxy mode: refused, reset, timed
  out) is reported (`upstream_failing`) but makes the instance unready only with
  `readiness.upstream: true`, which also probes the upstream so that a replica taken out sees
  it answer again (`intercept.doors.upstream_health`); then 503 with the problem "upstream failing".
- `GET /admin/status`: JSON for operators: mode, rule set (version, count, lists, load time,
  why the last reload was refused), ledger status (and its spool: `spool`, the rows and
  counts waiting there, `spooled_rows`, `spooled_counts`), upstream health (proxy mode: address,
  `up`, `failing_since`, `consecutive_failures`, `last_error_kind`, `probing`; null in other
  modes), uptime, and with `--workers N` the rule set each worker serves (`workers`: pid,
  version, rules, loaded_at, draining, started_at, and `last_reload`: at, age_seconds,
  current; `intercept.served`), and with `rules_feed` the feed
  (`feed`: its address without credentials, the version served, the last success, the last
  poll error's kind, the last refusal's reason, version, time and message, the next poll;
  `intercept.server.feedpoll`; null without a feed). No request-derived data exists.
- `POST /admin/reload` with `Authorization: Bearer <admin.reload_token>`: reload rules and
  messages now (`intercept.reload`); 200 with the version serving, or 422 with the problems
  of a refused set (the old one keeps serving). With `--workers N` the supervisor loads and
  re-forks the workers; the answer comes once that has finished, 503 with `behind` (how many
  workers still serve the previous set) when some re-forked worker did not start. No token
  configured: 404, the endpoint is off.
"""

from __future__ import annotations

import hmac
import os
import time
from dataclasses import asdict
from typing import Any

from aiohttp import web

from intercept import __version__
from intercept.core import Engine
from intercept.doors.upstream_health import health_of
from intercept.doors.upstream_pool import pool_of
from intercept.logscrub import scrub_aiohttp_logs
from intercept.reload import Reloader
from intercept.research.counting import CONTENT_TYPE_LATEST
from intercept.served import reload_state, workers
from intercept.server.feedpoll import feed_status

__all__ = ["build_admin_app", "status"]

_ENGINE = web.AppKey("admin engine", Engine)
_RELOADER = web.AppKey("admin reloader", Reloader)
_STARTED = time.time()


def status(engine: Engine) -> dict[str, Any]:
    """What `/admin/status` shows."""
    rules = engine.rules
    engine.counts.sync_logged()  # the ledger's `pending` includes this second's tallies
    ledger = engine.counts.ledger
    health = health_of(engine.extras)
    refused = list(engine.reload_problems)
    state = reload_state()  # with --workers N the supervisor's reloads (intercept.served)
    behind = int(state.get("behind", 0)) if state is not None else 0
    if state is not None and state.get("finished"):
        refused = [] if behind else [str(problem) for problem in state.get("problems", [])]
    return {
        "version": __version__,
        "mode": engine.config.mode,
        "pid": os.getpid(),
        "uptime_seconds": round(time.time() - _STARTED, 1),
        "rules": {
            "version": rules.version,
            "count": len(rules),
            "lists": [info.name for info in rules.lists],
            "loaded_at": engine.rules_loaded_at,
            "last_reload_refused": refused or None,
            "workers_behind": behind,  # --workers N: still on the previous set, retried
        },
        "ledger": {**asdict(ledger.status), **ledger.spool} if ledger is not None else None,
        "cautions": [{"code": c.code, "message": c.message} for c in engine.cautions],
        "upstream": health.status() if health is not None else None,
        "upstream_pool": pool.status() if (pool := pool_of(engine.extras)) else None,
        "workers": workers(),  # with --workers N: the version each worker serves
        "feed": feed_status(engine.config),  # rules_feed: the poller's state, else null
    }


def _ledger_failing(engine: Engine) -> bool:
    ledger = engine.counts.ledger
    return ledger is not None and ledger.status.last_error is not None


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[_ENGINE].counts.exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def _readyz(request: web.Request) -> web.Response:
    engine = request.app[_ENGINE]
    problems = []
    if engine.extras.get("draining"):
        problems.append("stopping")
    if len(engine.rules) == 0:
        problems.append("no rules loaded")
    if _ledger_failing(engine) and request.query.get("ledger") == "required":
        problems.append("ledger failing")
    health = health_of(engine.extras)
    upstream_failing = health is not None and health.failing
    if upstream_failing and engine.config.readiness.upstream:
        problems.append("upstream failing")
    body = {
        "ready": not problems,
        "problems": problems,
        "ledger_failing": _ledger_failing(engine),
        "upstream_failing": upstream_failing,
    }
    return web.json_response(body, status=503 if problems else 200)


async def _status(request: web.Request) -> web.Response:
    return web.json_response(status(request.app[_ENGINE]))


async def _reload(request: web.Request) -> web.Response:
    engine = request.app[_ENGINE]
    token = engine.config.admin.token()
    reloader = request.app.get(_RELOADER)
    if token is None or reloader is None:
        raise web.HTTPNotFound()
    offered = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(offered, f"Bearer {token}".encode()):
        return web.json_response({"ok": False, "error": "unauthorized"}, status=401)
    result = await reloader.reload_all("POST /admin/reload")  # every worker, see there
    code = 200 if result.ok else 503 if result.behind else 422  # 503: set good, roll not
    return web.json_response(result.as_dict(), status=code)


def build_admin_app(engine: Engine, reloader: Reloader | None = None) -> web.Application:
    """The admin application over `engine` (its counts, rules and ledger), and `reloader`
    for `POST /admin/reload`."""
    scrub_aiohttp_logs()
    app = web.Application()
    app[_ENGINE] = engine
    if reloader is not None:
        app[_RELOADER] = reloader
    app.router.add_post("/admin/reload", _reload)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/admin/status", _status)
    return app
