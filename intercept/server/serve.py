"""Running the public listener: load everything, serve until SIGINT or SIGTERM.

Assembling the engine (rules, pages, ledger, the middlewares' background thread) lives in
`intercept.assembly`, which the middlewares import without this module and aiohttp's server;
`build_engine` (documented), `attach_ledger`, `engine_for` and `start_ledger_thread` are
re-exported here."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from intercept.assembly import attach_ledger, build_engine, engine_for, start_ledger_thread
from intercept.config import Config
from intercept.doors.authz import AuthzDoor
from intercept.doors.proxy import Engine, ProxyDoor
from intercept.hugepages import advise_heap
from intercept.preflight import check_listeners
from intercept.reload import Reloader, Signature, notify_siblings, signature_of
from intercept.served import publish
from intercept.server import listeners
from intercept.server.admin import build_admin_app
from intercept.server.connections import (
    AcceptErrorLog,
    GatedServer,
    TimedHandler,
    caps_for,
    prepare,
)
from intercept.server.feedpoll import poll as poll_feed
from intercept.server.feedpoll import prime as prime_feed
from intercept.server.supervisor import RETIRE, supervise

if TYPE_CHECKING:
    from intercept.research.ledger import Ledger

__all__ = [
    "attach_ledger",
    "build_engine",
    "engine_for",
    "run",
    "runner_options",
    "settle_heap",
    "settle_pages",
    "start",
    "start_admin",
    "start_ledger_thread",
]  # fmt: skip


def _host_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def runner_options(config: Config) -> dict[str, Any]:
    """Server settings: the access log off, or the privacy-safe one (`intercept.server.accesslog`);
    parser limits a little above the configured ones, so that those are answered by
    Intercept's checks; what the parser itself refuses is answered by `_DoorHandler`. At most
    128 header lines (aiohttp's default) bound what one request's headers can occupy before
    the total is checked. Idle client connections close after `timeouts.keepalive`."""
    if config.access_log:
        from intercept.server.accesslog import ACCESS_LOGGER, SafeAccessLogger

        access: dict[str, Any] = {
            "access_log": ACCESS_LOGGER,
            "access_log_class": SafeAccessLogger.for_config(config),
        }
    else:
        access = {"access_log": None}  # off by default; aiohttp's own would record queries
    return {
        **access,
        "max_line_size": _line_limit(config),
        "max_field_size": _field_limit(config),
        "max_headers": _MAX_HEADER_LINES,
        "auto_decompress": False,  # request bodies are forwarded as they were sent
        "keepalive_timeout": config.timeouts.keepalive,
    }


def settle_heap() -> None:
    """Take what is loaded (rules, pages: millions of objects with 50,000 rules) out of the
    garbage collector's reach, and collect young objects less often. Without this the
    collector keeps re-walking the rule set: measured 20-25 us of CPU per relayed request
    with 50,000 rules (bench/proxy_bench.py), a fifth of the request's cost."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def settle_pages(config: Config) -> None:
    """With `huge_pages` (the default), 2 MiB pages under what is loaded; see
    `intercept.hugepages`. Logs how much memory they cover, or that the kernel declined."""
    if not config.huge_pages:
        return
    done = advise_heap()
    log = logging.getLogger("intercept")
    mib = 1024 * 1024
    if done.huge:
        log.info("huge pages: %d MiB of loaded memory", done.huge // mib)
    elif done.advised:
        log.info("huge pages: asked for %d MiB; none yet (the kernel may collapse them later)",
                 done.advised // mib)  # fmt: skip
    else:
        log.info("huge pages: declined by this system; serving with ordinary pages")


_MAX_HEADER_LINES = 128


class _DoorHandler(TimedHandler):
    """aiohttp's connection handler, with Intercept's own pages for what its parser refuses
    (a request line or header over the limits, too many headers, malformed HTTP) and for a
    front door's own failure: the status the limits promise (414, 431), in the default
    language (the request's headers may not have been read), naming no software version;
    the connection is closed as aiohttp does."""

    engine: Engine

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        if self.engine.extras.get("draining") and not resp.prepared:
            resp.force_close()  # stopping: the client opens its next connection elsewhere
        return await super().finish_response(request, resp, start_time)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs (scrubbed); raises if sent
        status = _parser_status(self.engine.config, status, exc)
        answer = self.engine.error(status)
        response = web.Response(status=status, headers=answer.headers, body=answer.body)
        response.force_close()
        return response


def _line_limit(config: Config) -> int:
    return config.limits.request_target + 1024


def _field_limit(config: Config) -> int:
    """Never equal to `_line_limit`: which one a parser error names tells 414 from 431."""
    limit = config.limits.headers + 1024
    return limit + 1 if limit == _line_limit(config) else limit


def _parser_status(config: Config, status: int, exc: BaseException | None) -> int:
    if isinstance(exc, LineTooLong):
        return 414 if exc.args[1] == _line_limit(config) else 431
    if isinstance(exc, BadHttpMessage) and "Too many headers" in str(exc):
        return 431
    return status


class _DoorServer(GatedServer):
    handler_class = _DoorHandler

    def __init__(self, door: ProxyDoor | AuthzDoor, **options: Any) -> None:
        super().__init__(door, **options)
        self.door = door

    def __call__(self) -> web.RequestHandler:
        handler = super().__call__()
        assert isinstance(handler, _DoorHandler)
        handler.engine = self.door.engine
        return handler


class _DoorRunner(web.ServerRunner):
    """aiohttp's runner for a low-level server whose front door is closed last, once the
    requests in flight have finished."""

    def __init__(self, door: ProxyDoor | AuthzDoor, **options: Any) -> None:
        super().__init__(_DoorServer(door, **options), handle_signals=False)
        self.door = door

    async def _cleanup_server(self) -> None:
        await self.door.close()


async def start(
    config: Config, engine: Engine | None = None, *, reuse_port: bool = False
) -> web.BaseRunner:
    """Start the public listener (reverse proxy or decision service, by `config.mode`);
    the caller cleans the runner up."""
    engine = engine or build_engine(config)
    door = AuthzDoor(engine) if config.mode == "authz" else ProxyDoor(engine)
    AcceptErrorLog(asyncio.get_running_loop()).install()  # EMFILE: a line per 10 s, no flood
    cap = caps_for(config)[0]
    header_timeout = config.timeouts.client_header
    runner = _DoorRunner(door, cap=cap, header_timeout=header_timeout, **runner_options(config))
    try:
        await door.open()
        await runner.setup()
        host, port = _host_port(config.listen)
        await listeners.site(runner, host, port, reuse_port=reuse_port).start()
    except BaseException:
        await runner.cleanup()  # closes the door too: no upstream client left behind
        raise
    return runner


async def start_admin(
    config: Config,
    engine: Engine,
    *,
    reloader: Reloader | None = None,
    reuse_port: bool = False,
) -> web.AppRunner:
    """Start the admin listener (metrics, health, status, reload); the caller cleans it up.
    Its connections have their own cap (`limits.admin_connections`) and the same deadlines
    as the public listener's."""
    app = build_admin_app(engine, reloader)
    runner = _AdminRunner(
        app,
        cap=caps_for(config)[1],
        header_timeout=config.timeouts.client_header,
        handle_signals=False,
        access_log=None,
        keepalive_timeout=config.timeouts.keepalive,
    )
    await runner.setup()
    host, port = _host_port(config.admin_listen)
    await listeners.site(runner, host, port, reuse_port=reuse_port).start()
    return runner


class _AdminRunner(web.AppRunner):
    """aiohttp's application runner on a `GatedServer`: the admin app's own server, rebuilt
    with the cap and the head deadline."""

    def __init__(
        self, app: web.Application, *, cap: int, header_timeout: float, **options: Any
    ) -> None:
        super().__init__(app, **options)
        self._gate = (cap, header_timeout)

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        cap, header_timeout = self._gate
        return GatedServer(
            made.request_handler,
            cap=cap,
            header_timeout=header_timeout,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **made._kwargs,
        )


class _EarlyHangup:
    """SIGHUP before the event loop handles it (while a large rule set loads, or between a
    worker's fork and its loop) is remembered, not fatal, and acted on once serving."""

    pending = False

    @classmethod
    def install(cls) -> None:
        signal.signal(signal.SIGHUP, cls._remember)

    @classmethod
    def _remember(cls, _sig: int, _frame: object) -> None:
        cls.pending = True


async def _serve(
    config: Config,
    ready: Callable[[web.BaseRunner], None] | None,
    engine: Engine | None = None,
    *,
    loaded: Signature | None = None,
    reuse_port: bool = False,
) -> None:
    if engine is None:
        _EarlyHangup.install()
        loaded = signature_of(config)  # before reading: a change made meanwhile is reloaded
        engine = build_engine(config, cache=True)
    ledger = attach_ledger(config, engine)
    reloader = Reloader(config, engine, loaded)
    runner = await start(config, engine, reuse_port=reuse_port)
    try:
        admin = await start_admin(config, engine, reloader=reloader, reuse_port=reuse_port)
    except BaseException:
        await runner.cleanup()  # the upstream client too: nothing left unclosed
        raise
    tasks = [asyncio.create_task(engine.counts.sync_every(1.0))]
    if not reuse_port:  # a worker never loads rules: its supervisor does (and re-forks it)
        poll = config.reload.poll_seconds
        tasks.append(asyncio.create_task(reloader.watch(poll, files=config.reload.watch)))
        tasks.append(asyncio.create_task(poll_feed(config, reloader)))  # with rules_feed
    if ledger is not None:
        tasks.append(asyncio.create_task(ledger.run(config.ledger.flush_seconds)))
        tasks.append(asyncio.create_task(_prune_daily(ledger, config.ledger.retention_days)))
    settle_heap()
    if not reuse_port:  # once serving, beside it (a worker shares its supervisor's pages)
        tasks.append(asyncio.create_task(asyncio.to_thread(settle_pages, config)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    retiring = False
    if reuse_port:  # a worker: stop with the supervisor, even one killed without a word
        tasks.append(asyncio.create_task(_orphaned(os.getppid(), stop)))

        def retire() -> None:  # replaced by a worker forked from a newer rule set
            nonlocal retiring
            retiring = True
            stop.set()

        loop.add_signal_handler(RETIRE, retire)
    hangups: set[asyncio.Task[object]] = set()

    def hangup() -> None:
        if reuse_port:  # the supervisor reloads, for every worker
            notify_siblings()
            return
        reload = reloader.reload("SIGHUP", force=True)  # an in-place edit too: see there
        task: asyncio.Task[object] = asyncio.create_task(reload)
        hangups.add(task)
        task.add_done_callback(hangups.discard)

    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGHUP, hangup)
    if _EarlyHangup.pending:
        _EarlyHangup.pending = False
        hangup()
    publish(engine)  # with --workers N: the version this worker serves, for /admin/status
    if ready is not None:
        ready(runner)
    try:
        await stop.wait()
    finally:
        engine.extras["draining"] = True  # /readyz says 503: load balancers stop sending
        if retiring:  # its replacement accepts on both listeners; /admin/status says so
            sites = (*runner.sites, *admin.sites)
            await _stop_accepting(sites)
            for site in sites:
                await site.stop()
            publish(engine, draining=True)
            # connections accepted last send their request and have it handled first: the
            # cleanup below closes the others, and would reset those (at most RETIRE_GRACE)
            await _settled(runner, admin)
            await _closed(runner)
        await runner.cleanup()  # requests in flight finish first, and are counted
        engine.counts.sync_logged()  # the last second's counts reach the metrics too
        for task in (*tasks, *hangups):
            task.cancel()
        # whatever those tasks died of, the last counts are still written
        await asyncio.gather(*tasks, *hangups, return_exceptions=True)
        if ledger is not None:
            await ledger.aclose()  # the last counts: a graceful stop loses nothing
        await admin.cleanup()


RETIRE_GRACE = 5.0  # the longest a retiring worker waits for its last clients' requests
IDLE_GRACE = 2.0  # and then for its kept-alive connections to close after their last answer


async def _stop_accepting(sites: tuple[web.BaseSite, ...]) -> None:
    """Take no more connections on `sites`, and let those just taken become connections.

    asyncio accepts a connection in the listening socket's reader, then makes its transport in
    a task; a server closed in between refuses to attach it and the socket is dropped with
    the request unread: the client sees a reset. So the readers go first, the loop runs the
    pending tasks, and only then are the sites stopped."""
    loop = asyncio.get_running_loop()
    for site in sites:
        server = getattr(site, "_server", None)  # aiohttp's: the asyncio Server behind it
        for sock in getattr(server, "sockets", ()) or ():
            loop.remove_reader(sock.fileno())
    await asyncio.sleep(0.05)


async def _settled(*runners: web.BaseRunner) -> None:
    """Wait (at least 0.1 s, at most `RETIRE_GRACE`) until no connection on `runners`'
    servers is unsettled (`TimedHandler.unsettled`): each is handling a request, or has had
    its answers and waits for no more."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RETIRE_GRACE
    await asyncio.sleep(0.1)
    servers = [r.server for r in runners if isinstance(r.server, GatedServer)]
    while any(server.unsettled() for server in servers) and loop.time() < deadline:
        await asyncio.sleep(0.02)


async def _closed(runner: web.BaseRunner) -> None:
    """Wait (at most `IDLE_GRACE`) until the public listener's kept-alive connections have
    closed themselves: each answer of a draining worker says `Connection: close`, so a
    client's pooled connection ends after its next search. Closing an idle kept-alive
    connection instead races with a client that is sending on it just then (it sees a
    reset); those left idle past the grace are closed, as a keep-alive timeout would."""
    server = runner.server
    if not isinstance(server, GatedServer):
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + IDLE_GRACE
    while server.open and loop.time() < deadline:
        await asyncio.sleep(0.02)


async def _orphaned(parent: int, stop: asyncio.Event) -> None:
    """Set `stop` once the process that forked this worker is gone (its parent changes)."""
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    stop.set()


async def _prune_daily(ledger: Ledger, days: int) -> None:
    """Delete ledger buckets older than the retention, at start and then once a day."""
    while True:
        try:
            await asyncio.to_thread(ledger.prune, days)
        except Exception as error:  # the database may be down: retried tomorrow
            logging.getLogger("intercept").warning(
                "ledger retention: pruning failed (%s)", type(error).__name__
            )
        await asyncio.sleep(86_400)


def run(config: Config, ready: Callable[[web.BaseRunner], None] | None = None) -> None:
    """Serve until SIGINT or SIGTERM; requests in flight finish first. With `workers` > 1,
    the rules are loaded once and that many forked processes share the listeners the
    supervisor holds (`intercept.server.listeners`), replaced when one dies
    (`intercept.server.supervisor`); the metrics are summed across them (`PROMETHEUS_MULTIPROC_DIR`,
    which must be set before the metrics library is imported: `intercept serve` does so)."""
    _EarlyHangup.install()  # first: from the first line logged on, a SIGHUP is not fatal
    prepare(config)  # the file limit raised to the hard limit, and said
    check_listeners(config)  # an address in use is said at once, not after the rules load
    prime_feed(config)  # rules_feed: the version to start from, on disk before it is read
    if config.workers is None:
        asyncio.run(_serve(config, ready))
        return
    listeners.hold(config)  # the supervisor's own: a second instance cannot take the address
    loaded = signature_of(config)
    engine = build_engine(config, cache=True)  # once, shared copy-on-write by the workers
    settle_heap()
    settle_pages(config)

    def worker(first: bool, current: Signature, listening: Callable[[], None]) -> None:
        def up(runner: web.BaseRunner) -> None:
            listening()
            if first and ready is not None:
                ready(runner)

        # the flag forked with the supervisor is the supervisor's: a worker inheriting it
        # set would ask for a reload at start, and every re-forked worker again, forever
        _EarlyHangup.pending = False
        asyncio.run(_serve(config, up, engine, loaded=current, reuse_port=True))

    hangup, _EarlyHangup.pending = _EarlyHangup.pending, False  # the supervisor acts on it
    supervise(config, engine, loaded, worker, hangup=hangup)
