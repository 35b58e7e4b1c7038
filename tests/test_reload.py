"""Live reload: good sets swap in whole, bad ones are refused and reported, nothing is dropped.

In-process tests drive `Reloader` and the admin endpoint; process tests send SIGHUP, use
`intercept reload`, and check that two workers end on the same version.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from intercept import load_rules
from intercept.config import Config, load_config
from intercept.core import Engine
from intercept.pages import load_pages
from intercept.reload import Reloader, Signature, signature_of
from intercept.server.admin import build_admin_app
from intercept.server.serve import start
from tests.processes import free_port, intercept_process
from tests.upstream import repo_config

ROOT = Path(__file__).parent.parent
TOKEN = "a-reload-token-of-enough-length"


def rules_yaml(language: str, *, extra: str = "", broken: bool = False) -> str:
    """A rule set whose one rule's language marks which set decided; `broken` adds an error."""
    text = f"""\
list: {{name: reload, source: synthetic, updated: 2026-11-29}}
defaults: {{category: demo, action: block, language: {language}}}
rules:
  - id: R-1
    terms: ["alpha one"]
    examples: {{match: ["alpha one"], no_match: ["alpha"]}}
{extra}"""
    if broken:
        text += '  - id: R-1\n    terms: ["duplicate id"]\n'
    return text


def write(folder: Path, text: str) -> None:
    target = folder / "rules.yaml"
    temporary = folder / ".rules.yaml.tmp"
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, target)  # as a deployment would: never a half-written file


def make(folder: Path, **settings: object) -> tuple[Config, Engine]:
    defaults: dict[str, object] = {"mode": "authz", "admin": {"reload_token": TOKEN}}
    config = repo_config(rules=str(folder), **{**defaults, **settings})
    pages = load_pages(config.pages_folder, survey_url=config.survey_url)
    return config, Engine(config=config, rules=load_rules(config.rules), pages=pages)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    write(rules, rules_yaml("de"))
    return rules


async def test_a_good_set_swaps_in_and_a_bad_one_is_refused(folder: Path) -> None:
    config, engine = make(folder)
    reloader = Reloader(config, engine)
    first = engine.rules.version
    assert (await reloader.reload("test")).changed is False  # same files: skipped
    write(folder, rules_yaml("fi"))
    result = await reloader.reload("test")
    assert result.ok
    assert result.changed
    assert engine.rules.version == result.version != first
    assert engine.rules.match("alpha one") is not None
    good = engine.rules.version
    write(folder, rules_yaml("es", broken=True))
    refused = await reloader.reload("test")
    assert not refused.ok
    assert engine.rules.version == good  # the old set keeps serving
    assert any("rules.yaml:" in p and "R-1" in p for p in refused.problems), refused.problems
    assert engine.reload_problems == refused.problems
    assert engine.counts.registry.get_sample_value("intercept_rule_load_failures_total") == 1


async def test_failing_examples_refuse_the_set_without_quoting_them(folder: Path) -> None:
    config, engine = make(folder)
    reloader = Reloader(config, engine)
    bad_example = '  - id: R-2\n    terms: ["beta two"]\n    examples: {match: ["gamma zeta"]}\n'
    write(folder, rules_yaml("de", extra=bad_example))
    result = await reloader.reload("test")
    assert not result.ok
    assert any("R-2" in p and "examples.match #1" in p for p in result.problems)
    assert not any("gamma" in p or "beta" in p for p in result.problems)


async def _watch_a_change(reloader: Reloader, folder: Path) -> None:
    """Run the watcher, change the rules, and wait (10 s at most) until they are served."""
    watching = asyncio.create_task(reloader.watch(0.05))
    try:
        before = reloader.engine.rules.version
        write(folder, rules_yaml("fi"))
        async with asyncio.timeout(10):
            while reloader.engine.rules.version == before:
                await asyncio.sleep(0.05)
    finally:
        watching.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watching


async def test_a_file_change_is_picked_up_by_the_watcher(folder: Path) -> None:
    config, engine = make(folder)
    reloader = Reloader(config, engine)
    await _watch_a_change(reloader, folder)


async def test_a_new_day_reloads_only_a_set_with_expiry_dates(
    folder: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The day trigger (`watch_triggers`, the supervisor's too): a forced reload when the
    UTC day changes and a served rule has an expiry date, none when no rule has one."""
    day = ["2026-12-01"]
    monkeypatch.setattr("intercept.reload._today", lambda: day[0])
    lasting = '  - id: R-2\n    terms: ["beta two"]\n    expires: 2999-12-31\n'
    write(folder, rules_yaml("de", extra=lasting))
    config, engine = make(folder)
    reloader = Reloader(config, engine)
    reason = "reload (a new day: expiry dates)"
    with caplog.at_level("INFO", logger="intercept.reload"):
        watching = asyncio.create_task(reloader.watch(0.02, files=False))
        try:
            await asyncio.sleep(0.1)
            assert not caplog.records  # the same day: nothing
            day[0] = "2026-12-02"
            async with asyncio.timeout(10):
                while not any(r.getMessage().startswith(reason) for r in caplog.records):
                    await asyncio.sleep(0.02)
            assert reloader.last is not None
            assert reloader.last.ok
            caplog.clear()
            write(folder, rules_yaml("de"))  # no expiry date left
            assert (await reloader.reload("test")).changed
            caplog.clear()
            day[0] = "2026-12-03"
            await asyncio.sleep(0.2)  # ten polls
            assert not caplog.records
        finally:
            watching.cancel()
            with pytest.raises(asyncio.CancelledError):
                await watching


@pytest.fixture
async def served(folder: Path) -> AsyncIterator[tuple[str, str, Reloader, Engine]]:
    port = free_port()
    config, engine = make(folder, listen=f"127.0.0.1:{port}")
    reloader = Reloader(config, engine)
    public = await start(config, engine)
    admin = TestServer(build_admin_app(engine, reloader), host="127.0.0.1")
    await admin.start_server()
    yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin.port}", reloader, engine
    await public.cleanup()
    await admin.close()


async def test_the_admin_endpoint_needs_its_token(
    served: tuple[str, str, Reloader, Engine], folder: Path
) -> None:
    _, admin, _, engine = served
    async with aiohttp.ClientSession() as session:
        async with session.post(admin + "/admin/reload") as response:
            assert response.status == 401
        write(folder, rules_yaml("fi"))
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        async with session.post(admin + "/admin/reload", headers=bearer) as response:
            assert response.status == 200
            assert (await response.json())["version"] == engine.rules.version
        write(folder, rules_yaml("es", broken=True))
        async with session.post(admin + "/admin/reload", headers=bearer) as response:
            assert response.status == 422
            body = await response.json()
        assert body["ok"] is False
        assert body["problems"]
        async with session.get(admin + "/admin/status") as response:
            status = await response.json()
        assert status["rules"]["last_reload_refused"] == body["problems"]


async def test_without_a_token_the_endpoint_is_off(folder: Path) -> None:
    config, engine = make(folder, admin={"reload_token": None})
    admin = TestServer(build_admin_app(engine, Reloader(config, engine)), host="127.0.0.1")
    await admin.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{admin.port}/admin/reload") as response:
                assert response.status == 404
    finally:
        await admin.close()


async def test_a_hundred_reloads_under_load_drop_nothing(
    served: tuple[str, str, Reloader, Engine], folder: Path
) -> None:
    """Good sets (language de, fi) alternate with broken ones (language es, never valid):
    every answer must be a page in de or fi, never es, never an error or a dropped request."""
    public, _, reloader, _ = served
    seen: Counter[str] = Counter()
    stop = asyncio.Event()

    async def load() -> None:
        url = public + "/_intercept/authz/search?q=alpha+one"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            while not stop.is_set():
                async with session.get(url) as response:
                    await response.read()
                    seen[f"{response.status} {response.headers.get('Content-Language')}"] += 1

    clients = [asyncio.create_task(load()) for _ in range(4)]
    outcomes: Counter[bool] = Counter()
    for number in range(100):
        if number % 2:
            write(folder, rules_yaml("es", broken=True))
        else:
            write(folder, rules_yaml("fi" if number % 4 == 0 else "de"))
        outcomes[(await reloader.reload("test", force=True)).ok] += 1
        await asyncio.sleep(0.005)  # let requests run between reloads
    stop.set()
    await asyncio.gather(*clients)  # a failed request would raise here
    assert outcomes == {True: 50, False: 50}
    assert set(seen) <= {"403 de", "403 fi"}, seen
    assert seen["403 de"]
    assert seen["403 fi"]
    assert sum(seen.values()) > 200


def _status(admin: str) -> dict[str, object]:
    with urllib.request.urlopen(f"http://{admin}/admin/status", timeout=10) as response:
        status: dict[str, object] = json.loads(response.read())
        return status


def _version(admin: str) -> str:
    rules = _status(admin)["rules"]
    assert isinstance(rules, dict)
    return str(rules["version"])


def _wait_for(predicate: object, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_and_intercept_reload_on_a_running_server(
    tmp_path: Path, folder: Path, workers: int
) -> None:
    public, admin = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "INTERCEPT_WARN__SECRET": "a-test-secret-of-enough-length",
        "INTERCEPT_LEDGER__URL": "null",
        "INTERCEPT_ADMIN__RELOAD_TOKEN": TOKEN,
        "INTERCEPT_RELOAD__WATCH": "false",
    }
    command = [
        "serve", "--mode", "authz",
        "--workers", str(workers), "--listen", f"127.0.0.1:{public}",
        "--admin-listen", f"127.0.0.1:{admin}", "--rules", str(folder),
        "--messages", str(ROOT / "messages"),
    ]  # fmt: skip
    address = f"127.0.0.1:{admin}"
    with intercept_process(*command, env=env) as proc:
        assert proc.stdout is not None
        assert "decision service" in proc.stdout.readline()
        first = _version(address)
        write(folder, rules_yaml("fi"))
        proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: all(_version(address) != first for _ in range(8)))
        second = _version(address)
        write(folder, rules_yaml("de", extra='  - id: R-9\n    terms: ["omega nine"]\n'))
        reload = [
            sys.executable, "-m", "intercept", "reload", "--admin-listen", address,
        ]  # fmt: skip
        done = subprocess.run(reload, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "reloaded" in done.stdout
        if workers == 2:  # the workers share one accept queue: ask status, which lists both
            _wait_for(lambda: _worker_versions(address) != {second} and
                      len(_worker_versions(address)) == 1 and
                      len(_workers(address)) == 2)  # fmt: skip
        else:
            _wait_for(lambda: _version(address) != second)
        third = _version(address)
        assert len({first, second, third}) == 3
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        assert "intercept_rules_loaded 2.0" in metrics  # whoever answers
        current = [line for line in metrics.splitlines() if line.endswith(" 1.0")
                   and line.startswith("intercept_rules_info")]  # fmt: skip
        assert current == [f'intercept_rules_info{{version="{third}"}} 1.0']
        if workers == 2:  # every worker ends on the same version
            assert _worker_versions(address) == {third}
            assert len(_workers(address)) == 2
        write(folder, rules_yaml("es", broken=True))
        done = subprocess.run(reload, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1
        assert "refused" in done.stderr
        assert "R-1" in done.stderr
        assert _version(address) == third
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def _workers(address: str) -> list[dict[str, object]]:
    """The workers as `/admin/status` lists them (whichever worker answers)."""
    listed = _status(address)["workers"]
    assert isinstance(listed, list)
    return listed


def _worker_versions(address: str) -> set[str]:
    """The rule set versions the workers serve, as `/admin/status` lists them."""
    return {str(worker["version"]) for worker in _workers(address)}


async def test_odd_authorization_headers_are_refused_not_errors(
    served: tuple[str, str, Reloader, Engine],
) -> None:
    _, admin, _, _ = served
    async with aiohttp.ClientSession() as session:
        for value in ("Bearer \udcff", "Bearer " + "x" * 5000, "Basic abc"):
            headers = {"Authorization": value.encode("utf-8", "surrogateescape").decode("latin-1")}
            async with session.post(admin + "/admin/reload", headers=headers) as response:
                assert response.status == 401


def test_an_unreadable_token_file_is_a_configuration_error(tmp_path: Path) -> None:
    from intercept.config import ConfigError

    with pytest.raises(ConfigError, match="reload_token_file cannot be read"):
        load_config(
            None, environ={}, overrides={"admin": {"reload_token_file": str(tmp_path / "x")}}
        )
    short = tmp_path / "short"
    short.write_text("tooshort\n")
    with pytest.raises(ConfigError, match="at least 16 characters"):
        load_config(None, environ={}, overrides={"admin": {"reload_token_file": str(short)}})


async def test_a_change_made_while_the_rules_loaded_is_reloaded(folder: Path) -> None:
    config = make(folder)[0]
    before_reading = signature_of(config)
    engine = make(folder)[1]  # the rules as they were read
    write(folder, rules_yaml("fi"))  # changed while (in real life) they were loading
    result = await Reloader(config, engine, before_reading).reload("SIGHUP")
    assert result.changed
    assert result.ok


async def test_the_watcher_outlives_a_failing_poll(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, engine = make(folder)
    reloader = Reloader(config, engine)
    calls = 0
    real = Reloader._signature

    def flaky(self: Reloader) -> Signature:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise FileNotFoundError("a folder vanished mid-walk")
        return real(self)

    monkeypatch.setattr(Reloader, "_signature", flaky)
    await _watch_a_change(reloader, folder)
    assert calls > 1


def test_sighup_while_a_large_rule_set_loads_does_not_kill_the_server(tmp_path: Path) -> None:
    from intercept.curation.rulebench import make_rules

    rules = tmp_path / "rules"
    rules.mkdir()
    lines = ["list: {name: big, source: synthetic, updated: 2026-11-29}",
             "defaults: {category: demo, action: block, language: en}", "rules:"]  # fmt: skip
    lines += [f'  - {{id: {s.id}, terms: ["{s.id.lower()} x"]}}' for s in make_rules(20_000)]
    (rules / "big.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    public, admin = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "INTERCEPT_WARN__SECRET": "a-test-secret-of-enough-length",
        "INTERCEPT_LEDGER__URL": "null",
        "INTERCEPT_RELOAD__WATCH": "false",
    }
    command = [
        "serve", "--mode", "authz", "--listen", f"127.0.0.1:{public}",
        "--admin-listen", f"127.0.0.1:{admin}", "--rules", str(rules),
        "--messages", str(ROOT / "messages"),
    ]  # fmt: skip
    with intercept_process(*command, env=env) as proc:
        assert proc.stderr is not None  # the first line logged comes after the handler
        assert "file limit" in proc.stderr.readline(), proc.poll()  # is installed
        time.sleep(0.5)  # the 20,000 rules are being read
        proc.send_signal(signal.SIGHUP)
        assert proc.stdout is not None
        assert "decision service" in proc.stdout.readline(), proc.poll()
        assert _version(f"127.0.0.1:{admin}")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
