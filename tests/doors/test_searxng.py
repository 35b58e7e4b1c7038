"""Intercept's SearXNG plugin (`intercept.searxng.SXNGPlugin`) in the real SearXNG.

SearXNG's sources come from `../shared/vendor/searxng-9fea412.tar.gz` (relative to the project
root); its pinned requirements, granian (the server of SearXNG's container) and this checkout
(editable) are installed into a venv of their own, built once per tarball, pyproject and
checkout under `~/.cache/intercept-tests/` (about 45 s the first time; SearXNG pins versions
that may clash with the project's). Each SearXNG runs in a granian process on a free loopback
port, with a `settings.yml` written here: the plugin listed, one offline engine
(`demo_offline`) so that a search gets SearXNG's own results page, no autocomplete backend,
and every outgoing connection sent to a dead loopback proxy, so nothing leaves the machine.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from tests.middleware_helpers import FORM, ROOT, call, form_actions, links
from tests.processes import free_port

TARBALL = ROOT.parent / "shared" / "vendor" / "searxng-9fea412.tar.gz"
GRANIAN = "granian==2.8.9"
START_TIMEOUT = 60.0
"""Seconds SearXNG may take to answer /healthz (imports, engines, Intercept's rules)."""
CANARY = "zqxsearxcanary"

RULES = """\
list:
  name: searxng-test
  source: "synthetic test terms"
  updated: 2026-12-01
defaults:
  category: demo
  language: en
rules:
  - id: SX-1
    action: block
    terms: ["blocked example"]
  - id: SX-2
    action: warn
    terms: ["purple teapot"]
"""

SHIPPED = ROOT / "deploy" / "searxng"
OURS = "intercept.searxng.SXNGPlugin"  # the documented path, as operators write it


def searxng_settings(*, debug: bool) -> dict[str, Any]:
    """The shipped `settings.yml`, with what a test on loopback needs: a secret key, one offline
    engine (SearXNG's `demo_offline`) in place of the default engines, no autocomplete backend,
    SearXNG's limiter and image proxy off, and every outgoing connection sent to a dead loopback
    proxy."""
    settings: dict[str, Any] = yaml.safe_load((SHIPPED / "settings.yml").read_text())
    settings["use_default_settings"] = {"engines": {"keep_only": []}}
    settings["general"] = {"debug": debug, "instance_name": "sxng-under-test"}
    settings["search"] = {"autocomplete": "", "formats": ["html"]}
    settings["server"].update(
        secret_key="test-only-0123456789abcdef0123456789",
        limiter=False,
        image_proxy=False,
        public_instance=False,
    )
    settings["valkey"] = {"url": False}
    settings["outgoing"] = {"proxies": {"all://": ["http://127.0.0.1:9"]}}
    settings["engines"] = [
        {"name": "offline demo", "engine": "demo_offline", "shortcut": "odemo", "disabled": False}
    ]
    return settings


def intercept_settings(folder: Path) -> dict[str, Any]:
    """The shipped `intercept.yaml` with its paths in `folder` and a ledger flushed every
    second."""
    config: dict[str, Any] = yaml.safe_load((SHIPPED / "intercept.yaml").read_text())
    config["rules"] = str(folder / "rules.yaml")
    config["ledger"].update(url=f"sqlite:{folder / 'ledger.db'}", flush_seconds=1)
    config["warn"]["secret_file"] = str(folder / "warn.secret")
    return config


# --- the venv: SearXNG's requirements, granian and this checkout -------------------------------


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "intercept-tests"


def _venv_key() -> str:
    digest = hashlib.sha256()
    digest.update(TARBALL.read_bytes())
    digest.update((ROOT / "pyproject.toml").read_bytes())
    digest.update(f"{ROOT.resolve()}\n{sys.version}\n{GRANIAN}".encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Installation:
    python: Path
    granian: Path
    sources: Path  # the folder holding `searx/`


def _install() -> Installation:
    """The venv, built now unless a complete one exists (a lock keeps parallel runs apart)."""
    root = _cache_root()
    root.mkdir(parents=True, exist_ok=True)
    home = root / f"searxng-{_venv_key()}"
    done = home / "complete"
    found = Installation(home / "venv/bin/python", home / "venv/bin/granian", home / "src")
    with (root / "searxng.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return found
        shutil.rmtree(home, ignore_errors=True)
        (home / "src").mkdir(parents=True)
        with tarfile.open(TARBALL) as archive:
            archive.extractall(home / "src", filter="data")
        # what SearXNG's container does, so it does not ask git for its version
        (home / "src/searx/version_frozen.py").write_text(
            'VERSION_STRING = "2026.8.22+9fea412"\nVERSION_TAG = "2026.8.22+9fea412"\n'
            'DOCKER_TAG = "2026.8.22-9fea412"\nGIT_URL = "unknown"\nGIT_BRANCH = "unknown"\n'
        )
        steps = [
            [sys.executable, "-m", "venv", str(home / "venv")],
            [str(home / "venv/bin/pip"), "install", "-q", "--disable-pip-version-check",
             "-r", str(home / "src/requirements.txt"), GRANIAN, "-e", str(ROOT)],
        ]  # fmt: skip
        for step in steps:
            result = subprocess.run(step, capture_output=True, text=True, timeout=540)
            if result.returncode != 0:
                pytest.fail(f"{' '.join(step[:3])}... failed:\n{result.stderr[-3000:]}")
        done.write_text("")
        return found


@pytest.fixture(scope="module")
def installation() -> Installation:
    if not TARBALL.is_file():
        pytest.skip(f"SearXNG's sources not found at {TARBALL} (see shared/vendor/README.md)")
    return _install()


# --- one SearXNG: files written here, granian on loopback ---------------------------------------


@dataclass
class Searxng:
    base: str
    folder: Path
    process: subprocess.Popen[bytes]

    @property
    def output(self) -> str:
        """Everything SearXNG, granian and Intercept wrote to stdout and stderr so far."""
        return "".join(
            (self.folder / name).read_text(errors="replace") for name in ("stdout", "stderr")
        )

    @property
    def ledger(self) -> Path:
        return self.folder / "ledger.db"

    @property
    def metrics(self) -> Path:
        return self.folder / "metrics"


def _write_files(folder: Path, *, debug: bool, rules: str) -> dict[str, str]:
    """SearXNG's and Intercept's configuration in `folder`; the process environment."""
    (folder / "tmp").mkdir()
    (folder / "metrics").mkdir()
    (folder / "rules.yaml").write_text(rules)
    (folder / "warn.secret").write_text("test-only-warn-secret-0123456789abcdef\n")
    (folder / "settings.yml").write_text(yaml.safe_dump(searxng_settings(debug=debug)))
    (folder / "intercept.yaml").write_text(yaml.safe_dump(intercept_settings(folder)))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("INTERCEPT_", "SEARXNG_", "GRANIAN_", "PROMETHEUS_", "PYTHON"))
    }
    env.update(
        SEARXNG_SETTINGS_PATH=str(folder / "settings.yml"),
        INTERCEPT_CONFIG=str(folder / "intercept.yaml"),
        PROMETHEUS_MULTIPROC_DIR=str(folder / "metrics"),
        TMPDIR=str(folder / "tmp"),  # SearXNG's caches (/tmp/sxng_cache_*.db otherwise)
    )
    return env


def _start(installation: Installation, folder: Path, env: dict[str, str]) -> Searxng:
    port = free_port()
    env = {**env, "PYTHONPATH": str(installation.sources)}
    command = [str(installation.granian), "--interface", "wsgi", "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1", "--blocking-threads", "2", "--no-ws",
               "searx.webapp:app"]  # fmt: skip
    with (folder / "stdout").open("wb") as out, (folder / "stderr").open("wb") as err:
        process = subprocess.Popen(
            command, cwd=folder, env=env, stdout=out, stderr=err, start_new_session=True
        )
    return Searxng(f"http://127.0.0.1:{port}", folder, process)


def _stop(searxng: Searxng) -> None:
    """SIGTERM to granian's process group (the server and its worker), SIGKILL after 15 s."""
    process = searxng.process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def _until_ready(searxng: Searxng) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if searxng.process.poll() is not None:
            pytest.fail(f"SearXNG exited ({searxng.process.returncode}):\n{searxng.output}")
        try:
            status, _, _ = await call("GET", searxng.base + "/healthz")
        except OSError:
            status = 0
        if status == 200:
            return
        time.sleep(0.2)
    pytest.fail(f"SearXNG did not answer /healthz within {START_TIMEOUT} s:\n{searxng.output}")


@pytest.fixture(scope="module")
def searxng_factory(
    installation: Installation, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    started: list[Searxng] = []

    def start(*, debug: bool = False, rules: str = RULES) -> Searxng:
        folder = tmp_path_factory.mktemp("searxng")
        searxng = _start(installation, folder, _write_files(folder, debug=debug, rules=rules))
        started.append(searxng)
        return searxng

    yield start
    for searxng in started:
        _stop(searxng)


@pytest.fixture(scope="module")
def searxng_process(searxng_factory: Any) -> Searxng:
    """SearXNG as operators run it (debug off), shared by this module's tests."""
    searxng: Searxng = searxng_factory()
    return searxng


@pytest.fixture
async def searxng(searxng_process: Searxng) -> Searxng:
    await _until_ready(searxng_process)
    return searxng_process


# --- reading answers and counts ------------------------------------------------------------------


def is_results_page(body: bytes, query: str) -> bool:
    """SearXNG's own results page for `query`, with the offline engine's results."""
    text = body.decode()
    return (
        "Demo Offline Engine Result" in text
        and 'name="q"' in text
        and f'value="{query}"' in text
        and "/_intercept/" not in text
    )


def is_deterrence_page(status: int, headers: Any, body: bytes) -> bool:
    return (
        status == 200
        and headers.get("Server") == "intercept"
        and headers["Content-Security-Policy"].startswith("default-src 'none'")
        and b"/_intercept/go/" in body
        and b"Demo Offline Engine Result" not in body
    )


def metric(searxng: Searxng, name: str, **labels: str) -> float:
    """A counter summed over SearXNG's worker processes (prometheus-client multiprocess files,
    which Intercept's counts reach within about a second)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(searxng.metrics))  # type: ignore[no-untyped-call]
    total = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def settled(read: Callable[[], float], seconds: float = 10.0) -> float:
    """`read()` once two readings 1.2 s apart agree: Intercept hands its tallies to the metrics
    and the ledger every second, so a count read sooner may still grow."""
    deadline = time.monotonic() + seconds
    value = read()
    while time.monotonic() < deadline:
        time.sleep(1.2)
        latest = read()
        if latest == value:
            return value
        value = latest
    return value


def ledger_clicks(searxng: Searxng, link: str, variant: str) -> float:
    import sqlite3

    if not searxng.ledger.exists():
        return 0.0
    with sqlite3.connect(searxng.ledger) as db:
        row = db.execute(
            "SELECT COALESCE(SUM(count), 0) FROM clicks WHERE link = ? AND variant = ?",
            (link, variant),
        ).fetchone()
    return float(row[0])


# --- the tests -----------------------------------------------------------------------------------


async def test_benign_searches_reach_searxng_by_get_and_post(searxng: Searxng) -> None:
    status, headers, body = await call("GET", searxng.base + "/search?q=garden+chairs")
    assert status == 200
    assert headers.get("Server") != "intercept"
    assert is_results_page(body, "garden chairs")
    status, _, body = await call(
        "POST", searxng.base + "/search", data=b"q=garden+chairs", headers={"Content-Type": FORM}
    )
    assert status == 200
    assert is_results_page(body, "garden chairs")
    status, _, body = await call("GET", searxng.base + "/")  # SearXNG's home page, untouched
    assert status == 200
    assert b"sxng-under-test" in body
    assert b"/_intercept/" not in body


async def test_blocked_searches_get_the_deterrence_page(searxng: Searxng) -> None:
    base = searxng.base
    page = await call("GET", base + "/search?q=blocked+example")
    assert is_deterrence_page(*page)
    page = await call("GET", base + "/search?q=bl0cked+ex4mple&categories=general&language=en")
    assert is_deterrence_page(*page)
    page = await call(
        "POST", base + "/search", data=b"q=blocked+example", headers={"Content-Type": FORM}
    )
    assert is_deterrence_page(*page)
    # the query on the home page: SearXNG redirects it to /search, where it is decided
    status, headers, _ = await call("GET", base + "/?q=blocked+example")
    assert status == 308
    assert headers["Location"].endswith("/search?q=blocked+example")
    assert is_deterrence_page(*await call("GET", base + "/search?q=blocked+example"))


async def test_a_path_prefix_from_the_client_does_not_get_around_the_rules(
    searxng: Searxng,
) -> None:
    """SearXNG strips an `X-Script-Name` prefix that any client may send: Intercept decides on
    the path SearXNG routes, so `/x/search` with `X-Script-Name: /x` is still a search."""
    prefix = {"X-Script-Name": "/x"}
    status, _, body = await call("GET", searxng.base + "/x/search?q=garden", headers=prefix)
    assert status == 200
    assert is_results_page(body, "garden")  # SearXNG does serve searches there
    page = await call("GET", searxng.base + "/x/search?q=blocked+example", headers=prefix)
    assert is_deterrence_page(*page)
    page = await call(
        "POST",
        searxng.base + "/x/search",
        data=b"q=blocked+example",
        headers={**prefix, "Content-Type": FORM},
    )
    assert is_deterrence_page(*page)


async def test_autocompleter_answers_an_empty_list_for_a_blocked_query(searxng: Searxng) -> None:
    base = searxng.base
    for headers in ({}, {"X-Requested-With": "XMLHttpRequest"}):
        status, answer, body = await call(
            "GET", base + "/autocompleter?q=blocked+example", headers=headers
        )
        assert status == 200
        # OpenSearch's empty answer; SearXNG's own script reads the suggestions at [1]
        assert json.loads(body) == ["", []]
        assert answer["Content-Type"] == "application/x-suggestions+json"
        assert b"blocked" not in body
    # a form body is read too (Werkzeug merges it into what SearXNG reads as `q`)
    status, _, body = await call(
        "GET", base + "/autocompleter", data=b"q=blocked+example", headers={"Content-Type": FORM}
    )
    assert (status, json.loads(body)) == (200, ["", []])
    # a benign prefix reaches SearXNG, which echoes it (OpenSearch format, no backend set)
    status, answer, body = await call("GET", base + "/autocompleter?q=garden")
    assert status == 200
    assert answer.get("Server") != "intercept"
    assert json.loads(body)[0] == "garden"


async def test_a_warned_post_search_continues_to_searxng_results(searxng: Searxng) -> None:
    status, headers, body = await call(
        "POST", searxng.base + "/search", data=b"q=purple+teapot", headers={"Content-Type": FORM}
    )
    assert is_deterrence_page(status, headers, body)
    actions = form_actions(body)
    assert actions
    assert actions[0].startswith("/_intercept/continue/")
    status, _, body = await call("POST", searxng.base + actions[0])
    assert status == 200
    assert is_results_page(body, "purple teapot")  # replayed into SearXNG as a POST search


async def test_clicks_and_searches_are_counted_once(searxng: Searxng) -> None:
    def searches() -> float:
        return metric(searxng, "intercept_searches_total", route="search")

    before = settled(searches)
    for query in ("lamp shades", "blocked example", "oak tables"):
        await call("GET", searxng.base + "/search?q=" + quote_plus(query))
    await call("POST", searxng.base + "/search", data=b"q=oak", headers={"Content-Type": FORM})
    await call("GET", searxng.base + "/autocompleter?q=oak")  # another route
    assert settled(searches) == before + 4

    _, _, body = await call("GET", searxng.base + "/search?q=blocked+example")
    survey = links(body, "/_intercept/go/survey")
    assert survey
    variant = re.findall(r"[?&]v=([a-z]+)", survey[0])[0]

    def clicks() -> float:
        return metric(searxng, "intercept_clicks_total", link="survey", variant=variant)

    def recorded() -> float:
        return ledger_clicks(searxng, "survey", variant)

    before_clicks, before_recorded = settled(clicks), settled(recorded)
    status, headers, _ = await call("GET", searxng.base + survey[0])
    assert status == 303
    assert headers["Location"].startswith("https://")
    assert headers["Referrer-Policy"] == "no-referrer"
    assert settled(clicks) == before_clicks + 1
    assert settled(recorded) == before_recorded + 1  # the research ledger too


async def test_the_plugin_is_not_a_preference_a_searcher_could_turn_off(
    searxng: Searxng,
) -> None:
    status, _, body = await call("GET", searxng.base + "/config")
    assert status == 200
    plugins = [plugin["name"] for plugin in json.loads(body)["plugins"]]
    assert "intercept" not in plugins
    status, _, body = await call("GET", searxng.base + "/preferences")
    assert status == 200
    assert b"plugin_intercept" not in body
    # a searcher who names it disabled anyway (cookie and form) is still decided
    page = await call(
        "GET",
        searxng.base + "/search?q=blocked+example&disabled_plugins=intercept",
        headers={"Cookie": "disabled_plugins=intercept; enabled_plugins="},
    )
    assert is_deterrence_page(*page)


async def test_nothing_of_the_queries_is_logged(searxng: Searxng, searxng_factory: Any) -> None:
    """Canary queries of every kind, to SearXNG as operators run it; then, with SearXNG's debug
    logging (every logger at DEBUG, Intercept's too), the queries SearXNG never sees: SearXNG
    in debug mode logs the address of every search it runs itself."""
    debug: Searxng = searxng_factory(debug=True)
    await _until_ready(debug)
    for site, benign in ((searxng, True), (debug, False)):
        for query in (f"{CANARY} blocked example", f"{CANARY} purple teapot"):
            _, _, body = await call("GET", f"{site.base}/search?q={quote_plus(query)}")
            for link in links(body, "/_intercept/go/"):
                await call("GET", site.base + link)
            data = f"q={quote_plus(query)}".encode()
            _, _, body = await call(
                "POST", site.base + "/search", data=data, headers={"Content-Type": FORM}
            )
            await call("GET", f"{site.base}/autocompleter?q={quote_plus(query)}")
            if benign:
                for action in form_actions(body):
                    await call("POST", site.base + action)  # the warned search, continued
        if benign:
            await call("GET", f"{site.base}/search?q={CANARY}+garden")
            await call("GET", f"{site.base}/autocompleter?q={CANARY}+garden")
    time.sleep(1.5)  # the background thread's last hand-over and ledger flush
    for site in (searxng, debug):
        output = site.output
        assert "Listening at" in output or "Started worker" in output  # the capture works
        assert CANARY not in output
        for path in (site.ledger, *site.metrics.iterdir()):
            assert CANARY.encode() not in path.read_bytes(), path
    assert "DEBUG" in debug.output  # debug logging was on
    assert "searx.webapp" in debug.output


async def test_a_broken_rule_file_stops_searxng_from_starting(searxng_factory: Any) -> None:
    broken: Searxng = searxng_factory(rules=RULES.replace("action: block", "action: smash"))
    deadline = time.monotonic() + START_TIMEOUT
    while broken.process.poll() is None and time.monotonic() < deadline:
        try:
            status, _, _ = await call("GET", broken.base + "/healthz")
        except OSError:
            status = 0
        assert status != 200, "SearXNG serves searches with no rules loaded"
        time.sleep(0.2)
    assert broken.process.returncode not in (None, 0)
    assert "rule set refused" in broken.output
    assert "SX-1" in broken.output  # the rule named, as `intercept check` would


def test_the_shipped_plugin_list_is_searxngs_own_plus_intercepts(
    installation: Installation,
) -> None:
    """`plugins:` replaces SearXNG's default list: the shipped one must keep every default."""
    default = yaml.safe_load((installation.sources / "searx/settings.yml").read_text())
    shipped = yaml.safe_load((SHIPPED / "settings.yml").read_text())
    assert shipped["plugins"] == {OURS: {"active": True}, **default["plugins"]}


def test_installed_once_in_front_of_flask_routing(
    installation: Installation, tmp_path: Path
) -> None:
    """In-process, in SearXNG's venv: after SearXNG's own start-up, Intercept sits directly in
    front of Flask's `wsgi_app` (under ReverseProxyPathFix, WhiteNoise and ProxyFix); a second
    `init` changes nothing."""
    env = _write_files(tmp_path, debug=False, rules=RULES)
    script = """
import json
from searx.webapp import app
from searx.plugins import PluginCfg
from intercept.doors.searxng import SXNGPlugin

def chain():
    layers, layer = [], app.wsgi_app
    while layer is not None and len(layers) < 20:
        layers.append(layer)
        layer = next((getattr(layer, a) for a in ("wsgi_app", "app", "application")
                      if callable(getattr(layer, a, None))), None)
    return layers

before = chain()
engine = app.extensions["intercept"]
assert SXNGPlugin(PluginCfg(active=True)).init(app) is False
after = chain()
last = after[-1]
print(json.dumps({
    "before": [type(layer).__name__ for layer in before],
    "after": [type(layer).__name__ for layer in after],
    "flask_last": getattr(last, "__self__", None) is app and last.__name__ == "wsgi_app",
    "decides": [type(getattr(layer, "intercept", None)).__name__ for layer in after],
    "same_engine": app.extensions["intercept"] is engine,
}))
"""
    result = subprocess.run(
        [str(installation.python), "-c", script],
        env={**env, "PYTHONPATH": str(installation.sources)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["before"] == seen["after"]
    assert seen["same_engine"]
    chain = seen["before"]
    assert chain.count("_OnPathInfo") == 1
    assert chain.index("ReverseProxyPathFix") < chain.index("_OnPathInfo")
    assert chain.index("ProxyFix") < chain.index("_OnPathInfo")
    assert chain.index("_OnPathInfo") == len(chain) - 2
    assert seen["flask_last"]  # Flask's own wsgi_app, right behind Intercept
    assert seen["decides"][chain.index("_OnPathInfo")] == "InterceptWSGI"
