"""`intercept.assembly`: the middlewares build their engine without the aiohttp server (each
imported by its documented path, which re-exports `intercept.doors`).

Each import runs in a fresh interpreter (nothing imported before it), and then the middleware
is built from a configuration, so the lazy imports along the assembly path (rules, pages,
ledger thread) are covered too. About 1-2 s per case; the SearXNG case needs SearXNG's venv
(`tests/doors/test_searxng.py` builds it once, about 45 s, and shares it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import intercept.assembly
import intercept.serve
import intercept.server.serve
from tests.doors.test_searxng import TARBALL, _install

ROOT = Path(__file__).parent.parent
SERVER = ("aiohttp", "intercept.serve", "intercept.doors.proxy", "intercept.doors.relay")
"""What a WSGI or ASGI application must not import: aiohttp (the server, its client and
`aiohttp.web` with it), the reverse proxy, and Intercept's server room (`intercept.server.*`,
and `intercept.serve`, which re-exports from it)."""

CONFIG = f"""
from intercept.config import load_config
config = load_config(None, environ={{}}, overrides={{
    "rules": {str(ROOT / "rules")!r}, "messages": {str(ROOT / "messages")!r},
    "ledger": {{"url": None}},
}})
"""

REPORT = (
    "\nimport json, sys\n"
    f"server = {SERVER!r}\n"
    "print(json.dumps({'server': sorted(n for n in sys.modules if n in server"
    " or n.startswith(('aiohttp.', 'intercept.server'))),"
    " 'assembly': 'intercept.assembly' in sys.modules}))\n"
)
"""Appended to the code run: the server modules it imported, and that it did assemble."""


def loaded(code: str, python: str = sys.executable, path: str | None = None) -> dict[str, object]:
    """Run `code` in a fresh interpreter and report which server modules it imported."""
    prelude = f"import sys; sys.path.insert(0, {path!r})\n" if path else ""
    result = subprocess.run(
        [python, "-c", prelude + code + REPORT],
        cwd=ROOT,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return report


@pytest.mark.parametrize("module", ["intercept.wsgi", "intercept.asgi"])
def test_importing_a_middleware_imports_no_server(module: str) -> None:
    assert loaded(f"import {module}") == {"server": [], "assembly": True}


@pytest.mark.parametrize(
    ("module", "factory", "app"),
    [
        ("intercept.wsgi", "wsgi_middleware", "lambda environ, start_response: []"),
        ("intercept.asgi", "asgi_middleware", "lambda scope, receive, send: None"),
    ],
)
def test_building_a_middleware_from_a_config_imports_no_server(
    module: str, factory: str, app: str
) -> None:
    code = f"{CONFIG}\nfrom {module} import {factory}\n{factory}({app}, config=config)\n"
    assert loaded(code) == {"server": [], "assembly": True}


def test_the_aiohttp_middleware_does_not_import_the_server_modules() -> None:
    """An aiohttp application has aiohttp already, and the middleware decides with the
    proxy's `decide_request`; the listener, admin app and supervisor stay out."""
    code = (
        f"{CONFIG}\nfrom aiohttp import web\nfrom intercept.aiohttp_middleware import setup\n"
        "setup(web.Application(), config)\n"
    )
    report = loaded(code)
    servers = report["server"]
    assert isinstance(servers, list)
    assert [name for name in servers if name.startswith("intercept.")] == [
        "intercept.doors.proxy",
        "intercept.doors.relay",
    ]
    assert "aiohttp.web" in servers  # the application's own: the report does see it
    assert report["assembly"] is True


def test_serve_re_exports_the_assembly() -> None:
    """`intercept.serve.build_engine` is a documented import; the others keep working too."""
    from intercept.serve import build_engine

    assert build_engine is intercept.assembly.build_engine
    assert intercept.serve.build_engine is intercept.server.serve.build_engine
    for name in ("attach_ledger", "engine_for", "start_ledger_thread"):
        assert getattr(intercept.serve, name) is getattr(intercept.assembly, name)
        assert name in intercept.serve.__all__


def test_the_searxng_plugin_does_not_import_the_server_modules() -> None:
    """In SearXNG's own venv (the module imports `searx`), with this checkout installed."""
    if not TARBALL.is_file():
        pytest.skip(f"SearXNG's sources not found at {TARBALL} (see shared/vendor/README.md)")
    installation = _install()
    report = loaded("import intercept.searxng", str(installation.python), str(installation.sources))
    assert report == {"server": [], "assembly": True}
