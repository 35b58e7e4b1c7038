"""The package as an operator installs it: the sdist built from this checkout, a wheel built
from that sdist, installed into a fresh venv, and every command run from an empty folder
outside the checkout with no `INTERCEPT_*` settings. This is what proves the wheel carries the
pages, the demo rules and the schema, and that nothing reads the checkout.

Costs about 40 s (build, venv, install from the package index or pip's cache)."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import intercept
from tests.processes import free_port, running, search_site

ROOT = Path(__file__).parent.parent


def _run(
    *command: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**_clean_env(), **(env or {})},
    )


def _clean_env() -> dict[str, str]:
    """The environment less Intercept's settings and anything pointing into the checkout."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("INTERCEPT_", "PYTHON", "VIRTUAL_ENV", "PROMETHEUS_"))
    }


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `bin` folder of a fresh venv holding the wheel built from the sdist."""
    base = tmp_path_factory.mktemp("package")
    dist = base / "dist"
    built = _run(sys.executable, "-m", "build", "--sdist", "-o", dist, ROOT, cwd=base)
    assert built.returncode == 0, built.stderr[-3000:]
    (sdist,) = dist.glob("intercept_deterrence-*.tar.gz")
    wheels = base / "wheels"
    made = _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, sdist,
                cwd=base)  # fmt: skip
    assert made.returncode == 0, made.stderr[-3000:]
    (wheel,) = wheels.glob("intercept_deterrence-*.whl")
    venv = base / "venv"
    assert _run(sys.executable, "-m", "venv", venv, cwd=base).returncode == 0
    done = _run(venv / "bin" / "pip", "install", "-q", wheel, cwd=base)
    assert done.returncode == 0, done.stderr[-3000:]
    return venv / "bin"


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


@pytest.fixture
def upstream() -> Iterator[str]:
    """A stand-in search front-end: every GET answers 200 with a marker."""
    with search_site(b"upstream results") as base:
        yield base


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def _wait_for_line(proc: subprocess.Popen[str], marker: str, seconds: float = 60) -> list[str]:
    """stdout lines up to the one holding `marker` (the command prints it once serving)."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return lines
    stderr = proc.stderr.read() if proc.stderr is not None and proc.poll() is not None else ""
    raise AssertionError(f"no {marker!r} in {lines!r}; stderr: {stderr[-2000:]}")


@contextmanager
def _process(
    *command: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """A command started in `cwd` with the clean environment plus `env`."""
    with running(command, cwd=cwd, env={**_clean_env(), **(env or {})}) as proc:
        yield proc


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str]:
    proc.send_signal(sig)
    code = proc.wait(timeout=30)
    assert proc.stderr is not None
    return code, proc.stderr.read()


def test_version_is_the_package_version(installed: Path, empty: Path) -> None:
    done = _run(installed / "intercept", "--version", cwd=empty)
    assert (done.returncode, done.stdout.strip()) == (0, f"intercept {intercept.__version__}")
    meta = _run(installed / "python", "-c",
                "import importlib.metadata as m; print(m.version('intercept-deterrence'))",
                cwd=empty)  # fmt: skip
    assert meta.stdout.strip() == intercept.__version__


def test_the_wheel_reads_nothing_from_the_checkout(installed: Path, empty: Path) -> None:
    done = _run(installed / "python", "-c",
                "import intercept, intercept.resources as r; print(intercept.__file__);"
                "print(r.MESSAGES); print(sorted(p.name for p in r.MESSAGES.iterdir()))",
                cwd=empty)  # fmt: skip
    module, messages, names = done.stdout.splitlines()
    assert not module.startswith(str(ROOT)), module
    assert not messages.startswith(str(ROOT)), messages
    assert {"en.yaml", "page.html.j2", "resources.yaml"} <= set(json.loads(names.replace("'", '"')))


def test_demo_runs_from_an_empty_folder(installed: Path, empty: Path) -> None:
    port = free_port()
    with _process(installed / "intercept", "demo", "--listen", f"127.0.0.1:{port}",
                  cwd=empty) as proc:  # fmt: skip
        _wait_for_line(proc, "Press Ctrl-C")
        base = f"http://127.0.0.1:{port}"
        status, benign = _get(base + "/search?q=teapot+museum")
        assert (status, "Results for" in benign) == (200, True)
        status, page = _get(base + "/search?q=bl0cked-ex4mple")
        assert (status, "Results for" in page, "survey" in page) == (200, False, True)
        code, stderr = _stop(proc, signal.SIGINT)
        assert code == 0, stderr
    assert list(empty.iterdir()) == []  # the demo keeps no files


def test_check_and_explain_from_an_empty_folder(installed: Path, empty: Path) -> None:
    rules = empty / "mine.yaml"
    rules.write_text(
        "list: {name: mine, source: test, updated: 2026-12-01}\n"
        "defaults: {category: demo, language: en, action: block}\n"
        "rules:\n  - id: MINE-1\n    terms: [lantern quilt]\n"
        "    examples: {match: [lantern quilt], no_match: [lantern]}\n",
        encoding="utf-8",
    )
    done = _run(installed / "intercept", "check", "--strict", rules, cwd=empty)
    assert (done.returncode, done.stdout[:11]) == (0, "OK: 1 rules"), done.stdout
    missing = _run(installed / "intercept", "check", "nothing-here", cwd=empty)
    assert missing.returncode == 2
    assert "nothing-here: no such file or folder" in missing.stderr
    explained = _run(installed / "intercept", "explain", "--rules", rules, "L4NTERN quilt",
                     cwd=empty)  # fmt: skip
    assert explained.returncode == 0, explained.stderr
    assert "block by MINE-1" in explained.stdout


def test_serve_with_only_rules_and_upstream_then_report(
    installed: Path, empty: Path, upstream: str
) -> None:
    (empty / "rules.yaml").write_bytes((ROOT / "rules" / "demo.yaml").read_bytes())
    port, admin = free_port(), free_port()
    with _process(installed / "intercept", "serve", "--upstream", upstream,
                  "--rules", "rules.yaml", "--listen", f"127.0.0.1:{port}",
                  "--admin-listen", f"127.0.0.1:{admin}", cwd=empty) as proc:  # fmt: skip
        _wait_for_line(proc, "serving on")
        base = f"http://127.0.0.1:{port}"
        assert _get(base + "/search?q=garden+chairs") == (200, "upstream results")
        status, page = _get(base + "/search?q=blocked+example")
        assert (status, "upstream results" in page, "survey" in page) == (200, False, True)
        status, body = _get(f"http://127.0.0.1:{admin}/admin/status")
        assert json.loads(body)["version"] == intercept.__version__
        _, metrics = _get(f"http://127.0.0.1:{admin}/metrics")
        assert f'intercept_build_info{{version="{intercept.__version__}"}} 1.0' in metrics
        code, stderr = _stop(proc)
        assert code == 0, stderr
    ledger = empty / "intercept-ledger.db"  # the default ledger, relative to the folder
    with sqlite3.connect(ledger) as db:
        tables = {row[0] for row in db.execute("select name from sqlite_master")}
    assert tables
    report = _run(installed / "intercept", "report", "--ledger", f"sqlite:{ledger}",
                  "--format", "json", "--k", "1", cwd=empty)  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert re.search(r'"searches": 2\b', report.stdout), report.stdout


def test_init_writes_a_folder_that_checks_and_serves(
    installed: Path, empty: Path, upstream: str
) -> None:
    done = _run(installed / "intercept", "init", "site", cwd=empty)
    assert done.returncode == 0, done.stderr
    site = empty / "site"
    for what_to_edit in ("survey_url", "resources.yaml", "upstream"):
        assert what_to_edit in done.stdout
    assert (site / "warn.secret").stat().st_mode & 0o077 == 0
    checked = _run(installed / "intercept", "check", "--strict", site / "rules", cwd=empty)
    assert checked.returncode == 0, checked.stdout
    again = _run(installed / "intercept", "init", "site", cwd=empty)
    assert again.returncode == 2
    assert "nothing was written" in again.stderr
    port, admin = free_port(), free_port()
    settings = {
        "INTERCEPT_UPSTREAM": upstream,
        "INTERCEPT_LISTEN": f"127.0.0.1:{port}",
        "INTERCEPT_ADMIN_LISTEN": f"127.0.0.1:{admin}",
    }
    with _process(installed / "intercept", "serve", "--config", site / "intercept.yaml",
                  cwd=Path("/"), env=settings) as proc:  # fmt: skip
        _wait_for_line(proc, "serving on")
        status, page = _get(f"http://127.0.0.1:{port}/search?q=example+forbidden+phrase")
        assert (status, "upstream results" in page) == (200, False)
        reload = _run(installed / "intercept", "reload", "--config", site / "intercept.yaml",
                      cwd=empty, env=settings)  # fmt: skip
        assert reload.returncode == 0, reload.stderr  # init wrote the reload token
        assert reload.stdout.startswith("reloaded: rule set ")
        code, stderr = _stop(proc)
        assert code == 0, stderr
    assert (site / "ledger.sqlite3").exists()  # the init folder's absolute ledger path
