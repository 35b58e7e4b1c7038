"""Traefik and Envoy, which Debian does not package: their decision requests, sent exactly as
those proxies build them (from the shipped deploy/traefik/*.yml and deploy/envoy/envoy.yaml),
to Intercept's decision service; and the shipped files themselves, parsed and checked.

Traefik ForwardAuth (pkg/middlewares/auth/forward.go): a GET to `address`; the client's headers
(only those in `authRequestHeaders`, when set); X-Forwarded-For (the client's address),
-Method, -Proto, -Host, -Uri set from the request (`trustForwardHeader: false`); with
`forwardBody`, the client's body, sent by Go's client without a length (chunked). A 2xx answer
allows; any other answer is returned to the client as it is.

Envoy ext_authz `http_service`: the client's method; the path `path_prefix` + the original path
and query; Host = the original host; the headers in `allowed_headers` plus Host, Method, Path,
Content-Length and Authorization; with `with_request_body`, the buffered body with its length
and `x-envoy-auth-partial-body`. 200 allows; any other answer is returned with its headers and
body.

Where an `envoy` or `traefik` binary is installed, the shipped files are also run with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from intercept.config import DEFAULT_ROUTES, Config
from intercept.core import Engine
from tests.deploy_helpers import (
    BENIGN,
    BLOCKED,
    DEPLOY,
    WARNED,
    Deployment,
    free_port,
    isolated_env,
    render,
    running_process,
    services,
)
from tests.upstream import fetch, running_authz

TRAEFIK_STATIC = DEPLOY / "traefik" / "traefik.yml"
TRAEFIK_DYNAMIC = DEPLOY / "traefik" / "dynamic.yml"
ENVOY = DEPLOY / "envoy" / "envoy.yaml"

CLIENT = "192.0.2.10"  # the searcher's address, as the proxy reports it
HOST = "search.example"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def forward_auth() -> dict[str, Any]:
    """The shipped Traefik ForwardAuth middleware."""
    middleware: dict[str, Any] = load(TRAEFIK_DYNAMIC)["http"]["middlewares"]["intercept"]
    return middleware["forwardAuth"]  # type: ignore[no-any-return]


def ext_authz() -> dict[str, Any]:
    """The shipped Envoy ext_authz filter configuration."""
    for filter_ in _connection_manager()["http_filters"]:
        if filter_["name"] == "envoy.filters.http.ext_authz":
            return filter_["typed_config"]  # type: ignore[no-any-return]
    raise AssertionError("deploy/envoy/envoy.yaml has no envoy.filters.http.ext_authz filter")


def _connection_manager() -> dict[str, Any]:
    listener = load(ENVOY)["static_resources"]["listeners"][0]
    return listener["filter_chains"][0]["filters"][0]["typed_config"]  # type: ignore[no-any-return]


def envoy_routes() -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = _connection_manager()["route_config"]["virtual_hosts"][0][
        "routes"
    ]
    return routes


def interventions(engine: Engine, action: str = "block") -> float:
    return sum(
        engine.counts.value(
            "interventions", category="demo", action=action, language="en", variant=variant
        )
        for variant in engine.pages.variants
    )


# --- the requests those proxies send ------------------------------------------------------


def traefik_request(
    method: str,
    target: str,
    client_headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[str, dict[str, Any]]:
    """Traefik's decision request for a client request: (path of `address`, fetch() kwargs)."""
    config = forward_auth()
    allowed = {name.lower() for name in config.get("authRequestHeaders") or []}
    headers = {
        name: value
        for name, value in (client_headers or {}).items()
        if not allowed or name.lower() in allowed
    }
    headers.update(
        {
            "User-Agent": "Go-http-client/1.1",
            "X-Forwarded-For": CLIENT,
            "X-Forwarded-Method": method,
            "X-Forwarded-Proto": "http",
            "X-Forwarded-Host": HOST,
            "X-Forwarded-Uri": target,
        }
    )
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None and config.get("forwardBody"):

        async def chunked() -> AsyncIterator[bytes]:  # Go sends it without a length
            yield body

        kwargs["data"] = chunked()
    path = "/" + config["address"].split("://", 1)[1].split("/", 1)[1]
    return path, kwargs


def envoy_request(
    method: str,
    target: str,
    client_headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[str, str, dict[str, Any]]:
    """Envoy's check request for a client request: (method, path, fetch() kwargs)."""
    config = ext_authz()
    patterns = [p["exact"] for p in config["allowed_headers"]["patterns"]]
    always = {"authorization"}
    headers = {
        name: value
        for name, value in (client_headers or {}).items()
        if name.lower() in {*patterns, *always}
    }
    headers["Host"] = HOST
    headers["x-envoy-expected-rq-timeout-ms"] = "2000"
    if "with_request_body" in config:
        headers["x-envoy-auth-partial-body"] = "false"
    kwargs: dict[str, Any] = {"headers": headers, "data": body or b""}
    return method, config["http_service"]["path_prefix"] + target, kwargs


# --- Traefik ForwardAuth ------------------------------------------------------------------


async def test_traefik_benign_search_is_allowed_with_an_empty_200() -> None:
    async with running_authz() as (base, engine):
        path, kwargs = traefik_request("GET", BENIGN, {"Accept-Language": "fi", "Cookie": "a=b"})
        status, _, body = await fetch("GET", base + path, **kwargs)
        assert (status, body) == (200, b"")
        assert engine.counts.value("searches", route="search") == 1
        assert interventions(engine) == 0


async def test_traefik_blocked_search_is_denied_with_the_page_counted_once() -> None:
    async with running_authz() as (base, engine):
        path, kwargs = traefik_request("GET", BLOCKED, {"Accept-Language": "en-GB"})
        status, headers, body = await fetch("GET", base + path, **kwargs)
        assert status == 403
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["Content-Type"].startswith("text/html")
        assert b"<html" in body
        assert b"blocked" not in body
        assert b"/_intercept/go/" in body
        assert engine.counts.value("searches", route="search") == 1
        assert interventions(engine) == 1


async def test_traefik_post_search_body_is_decided() -> None:
    """`forwardBody: true`: the body arrives with the decision request and is read."""
    form = {"Content-Type": "application/x-www-form-urlencoded", "Accept-Language": "en"}
    async with running_authz() as (base, engine):
        path, kwargs = traefik_request("POST", "/search", form, b"q=blocked+example")
        status, _, body = await fetch("GET", base + path, **kwargs)
        assert status == 403
        assert b"<html" in body
        assert b"blocked" not in body
        path, kwargs = traefik_request("POST", "/search", form, b"q=kites&page=2")
        status, _, body = await fetch("GET", base + path, **kwargs)
        assert (status, body) == (200, b"")
        assert engine.counts.value("searches", route="search") == 2
        assert interventions(engine) == 1


async def test_traefik_compressed_post_search_body_is_refused() -> None:
    """Content-Encoding reaches Intercept (authRequestHeaders), so a compressed body, which it
    cannot read, is refused rather than allowed."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Encoding": "gzip",
    }
    async with running_authz() as (base, _):
        path, kwargs = traefik_request("POST", "/search", headers, b"\x1f\x8b\x08\x00")
        status, _, _ = await fetch("GET", base + path, **kwargs)
        assert status == 403  # every denial is 403 (Intercept's 415 page as the body)


async def test_traefik_warn_then_continue_is_allowed() -> None:
    async with running_authz() as (base, engine):
        path, kwargs = traefik_request("GET", WARNED)
        status, _, body = await fetch("GET", base + path, **kwargs)
        assert status == 403
        assert b"purple" not in body
        links = re.findall(r'href="(/_intercept/continue/[^"]+)"', body.decode())
        assert len(set(links)) == 1  # at the top and after the help list: one way on
        # Traefik routes /_intercept/continue/ to Intercept (the intercept-links router)
        status, headers, _ = await fetch("GET", base + links[0])
        assert status == 303
        location = headers["Location"]
        assert location.startswith(WARNED + "&_intercept_continue=")
        path, kwargs = traefik_request("GET", location)
        status, _, body = await fetch("GET", base + path, **kwargs)
        assert (status, body) == (200, b"")
        assert interventions(engine, "warn") == 1


async def test_traefik_autocomplete_is_denied_with_an_empty_list() -> None:
    async with running_authz() as (base, _):
        path, kwargs = traefik_request("GET", "/autocomplete?q=blocked+example")
        status, _, body = await fetch("GET", base + path, **kwargs)
        assert (status, body) == (403, b"[]")


# --- Envoy ext_authz ----------------------------------------------------------------------


async def test_envoy_benign_search_is_allowed_with_an_empty_200() -> None:
    async with running_authz() as (base, engine):
        method, path, kwargs = envoy_request("GET", BENIGN, {"accept-language": "fi"})
        status, _, body = await fetch(method, base + path, **kwargs)
        assert (status, body) == (200, b"")
        assert engine.counts.value("searches", route="search") == 1


async def test_envoy_blocked_search_is_denied_with_the_page_counted_once() -> None:
    async with running_authz() as (base, engine):
        method, path, kwargs = envoy_request("GET", BLOCKED, {"accept-language": "en"})
        status, headers, body = await fetch(method, base + path, **kwargs)
        assert status == 403
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["Referrer-Policy"] == "no-referrer"
        assert b"<html" in body
        assert b"blocked" not in body
        assert engine.counts.value("searches", route="search") == 1
        assert interventions(engine) == 1


async def test_envoy_post_search_body_is_decided() -> None:
    form = {"content-type": "application/x-www-form-urlencoded", "cookie": "session=1"}
    async with running_authz() as (base, engine):
        method, path, kwargs = envoy_request("POST", "/search", form, b"q=blocked+example")
        status, _, body = await fetch(method, base + path, **kwargs)
        assert status == 403
        assert b"<html" in body
        method, path, kwargs = envoy_request("POST", "/search", form, b"q=kites")
        status, _, body = await fetch(method, base + path, **kwargs)
        assert (status, body) == (200, b"")
        assert interventions(engine) == 1


async def test_envoy_warn_then_continue_is_allowed() -> None:
    async with running_authz() as (base, engine):
        method, path, kwargs = envoy_request("GET", WARNED)
        status, _, body = await fetch(method, base + path, **kwargs)
        assert status == 403
        links = re.findall(r'href="(/_intercept/continue/[^"]+)"', body.decode())
        assert len(set(links)) == 1  # at the top and after the help list: one way on
        status, headers, _ = await fetch("GET", base + links[0])
        assert status == 303
        method, path, kwargs = envoy_request("GET", headers["Location"])
        status, _, body = await fetch(method, base + path, **kwargs)
        assert (status, body) == (200, b"")
        assert interventions(engine, "warn") == 1


async def test_envoy_autocomplete_is_denied_with_an_empty_list() -> None:
    async with running_authz() as (base, _):
        method, path, kwargs = envoy_request("GET", "/suggest?q=blocked+example")
        status, _, body = await fetch(method, base + path, **kwargs)
        assert (status, body) == (403, b'["", []]')


# --- trust ----------------------------------------------------------------------------------


async def test_descriptions_from_an_untrusted_peer_are_refused() -> None:
    """Only `authz.trusted_proxies` may describe a request; anyone else is denied, so a
    client that reaches the decision service directly cannot have a search allowed."""
    async with running_authz(authz={"trusted_proxies": ["192.0.2.0/24"]}) as (base, engine):
        path, kwargs = traefik_request("GET", BENIGN)
        status, _, _ = await fetch("GET", base + path, **kwargs)
        assert status == 403
        method, path, kwargs = envoy_request("GET", BENIGN)
        status, _, _ = await fetch(method, base + path, **kwargs)
        assert status == 403
        assert engine.counts.value("searches", route="search") == 0


# --- the shipped files ------------------------------------------------------------------------


def test_traefik_forward_auth_points_at_the_decision_service() -> None:
    config = forward_auth()
    assert config["address"].endswith("/_intercept/authz")
    assert config["trustForwardHeader"] is False
    assert config["forwardBody"] is True
    assert config["maxBodySize"] == Config().limits.body
    assert {h.lower() for h in config["authRequestHeaders"]} >= {
        "accept-language",
        "content-type",
        "content-encoding",
    }
    assert config["authResponseHeaders"] == []


def test_traefik_routers() -> None:
    dynamic = load(TRAEFIK_DYNAMIC)["http"]
    routers = dynamic["routers"]
    with_decision = [name for name, r in routers.items() if "intercept" in r.get("middlewares", [])]
    assert with_decision == ["search"]
    links = routers["intercept-links"]
    assert links["service"] == "intercept"
    assert "/_intercept/go/" in links["rule"]
    assert "/_intercept/continue/" in links["rule"]
    assert all("/_intercept/authz" not in r["rule"] for r in routers.values())
    assert routers["search"]["priority"] > routers["everything-else"]["priority"]
    intercept_url = dynamic["services"]["intercept"]["loadBalancer"]["servers"][0]["url"]
    assert forward_auth()["address"].startswith(intercept_url + "/")
    static = load(TRAEFIK_STATIC)
    assert "accessLog" not in static  # it would record every query string
    assert "api" not in static
    assert "forwardedHeaders" not in static["entryPoints"]["web"]
    assert static["providers"]["file"]["filename"].endswith("dynamic.yml")


def test_envoy_ext_authz_points_at_the_decision_service() -> None:
    config = ext_authz()
    service = config["http_service"]
    assert service["path_prefix"] == "/_intercept/authz"
    assert service["server_uri"]["cluster"] == "intercept"
    assert {p["exact"] for p in config["allowed_headers"]["patterns"]} >= {
        "accept-language",
        "content-type",
        "content-encoding",
    }
    assert config["with_request_body"]["max_request_bytes"] == Config().limits.body
    assert config["with_request_body"]["allow_partial_message"] is False
    assert config["failure_mode_allow"] is False
    assert "authorization_response" not in service  # all of the page's headers reach clients
    clusters = {c["name"] for c in load(ENVOY)["static_resources"]["clusters"]}
    assert clusters == {"intercept", "search_frontend"}
    manager = _connection_manager()
    assert "access_log" not in manager
    assert manager["normalize_path"] is True
    assert manager["merge_slashes"] is True


def test_envoy_routes_disable_the_decision_except_on_search_routes() -> None:
    decided = []
    for route in envoy_routes():
        per_filter = route.get("typed_per_filter_config", {}).get("envoy.filters.http.ext_authz")
        if per_filter is None or not per_filter.get("disabled"):
            decided.append(route)
        if route["match"].get("prefix", "").startswith(("/_intercept/go/", "/_intercept/cont")):
            assert route["route"]["cluster"] == "intercept"
    assert len(decided) == 1
    assert "safe_regex" in decided[0]["match"]
    assert decided[0]["route"]["cluster"] == "search_frontend"
    private = [r for r in envoy_routes() if r["match"].get("prefix") == "/_intercept/"]
    assert private[0]["direct_response"]["status"] == 404


# --- every shipped configuration sends the same paths to the decision service ---------------


def _search_matchers() -> dict[str, re.Pattern[str]]:
    """The search-route matcher of each shipped configuration, as a Python pattern on the
    path as that proxy sees it (nginx, Caddy, Traefik, Envoy: normalised; HAProxy: decoded
    and lower-cased)."""
    nginx = re.search(r'location ~\* "([^"]+)"', (DEPLOY / "nginx" / "intercept.conf").read_text())
    caddy = re.search(r"path_regexp search (\S+)", (DEPLOY / "caddy" / "Caddyfile").read_text())
    haproxy = re.search(
        r"acl search_route path,url_dec,lower -m reg (\S+)",
        (DEPLOY / "haproxy" / "haproxy.cfg").read_text(),
    )
    traefik = re.fullmatch(r"PathRegexp\(`(.+)`\)", load(TRAEFIK_DYNAMIC)["http"]["routers"]
                           ["search"]["rule"])  # fmt: skip
    envoy = next(r["match"]["safe_regex"]["regex"] for r in envoy_routes()
                 if "safe_regex" in r["match"])  # fmt: skip
    assert nginx is not None
    assert caddy is not None
    assert haproxy is not None
    assert traefik is not None
    return {
        "nginx": re.compile(nginx.group(1), re.IGNORECASE),
        "caddy": re.compile(caddy.group(1)),
        "haproxy": re.compile(haproxy.group(1)),
        "traefik": re.compile(traefik.group(1)),
        "envoy": _whole(envoy),  # Envoy's safe_regex matches the whole path
    }


def _whole(pattern: str) -> re.Pattern[str]:
    """`pattern` (RE2, perhaps with a leading `(?i)`) anchored at both ends."""
    flags = re.IGNORECASE if pattern.startswith("(?i)") else 0
    return re.compile("^(?:" + pattern.removeprefix("(?i)") + ")$", flags)


def _default_paths() -> Iterator[str]:
    for route in DEFAULT_ROUTES:
        assert route.path is not None
        yield route.path


@pytest.mark.parametrize("proxy", ["nginx", "caddy", "haproxy", "traefik", "envoy"])
def test_every_configuration_asks_about_exactly_the_search_routes(proxy: str) -> None:
    matcher = _search_matchers()[proxy]
    for path in _default_paths():
        variants = [path, path.upper(), path + "/", path + ";jsessionid=1"]
        for variant in variants:
            seen = variant.lower() if proxy == "haproxy" else variant
            assert matcher.search(seen), (proxy, variant)
    for other in ("/", "/static/app.css", "/echo", "/searching", "/search.css", "/about"):
        assert not matcher.search(other), (proxy, other)


# --- the real binaries, where installed -----------------------------------------------------


def test_envoy_validates_the_shipped_file() -> None:
    envoy = shutil.which("envoy")
    if envoy is None:
        pytest.skip("envoy is not installed (not packaged for Debian): contract tests only")
    result = subprocess.run(
        [envoy, "--mode", "validate", "-c", str(ENVOY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@contextlib.asynccontextmanager
async def _traefik(tmp: Path, binary: str) -> AsyncIterator[Deployment]:
    async with services() as (upstream_port, authz_port, engine, upstream, authz):
        port = free_port()
        dynamic = render(
            TRAEFIK_DYNAMIC.read_text(),
            {
                "127.0.0.1:8081": f"127.0.0.1:{authz_port}",
                "127.0.0.1:8000": f"127.0.0.1:{upstream_port}",
            },
        )
        (tmp / "dynamic.yml").write_text(dynamic)
        static = render(
            TRAEFIK_STATIC.read_text(),
            {
                'address: ":8090"': f'address: "127.0.0.1:{port}"',
                "/etc/traefik/dynamic.yml": str(tmp / "dynamic.yml"),
            },
        )
        (tmp / "traefik.yml").write_text(static)
        argv = [binary, f"--configFile={tmp / 'traefik.yml'}"]
        async with running_process(argv, port, tmp, env=isolated_env(tmp)) as process:
            yield Deployment(f"http://127.0.0.1:{port}", engine, upstream, authz, process, 403)


async def test_traefik_runs_the_shipped_files(tmp_path: Path) -> None:
    binary = shutil.which("traefik")
    if binary is None:
        pytest.skip("traefik is not installed (not packaged for Debian): contract tests only")
    async with _traefik(tmp_path, binary) as traefik:
        for _ in range(50):  # the file provider loads the routers just after start-up
            status, _, _ = await traefik.get("/echo")
            if status == 200:
                break
            await asyncio.sleep(0.1)
        traefik.upstream.clear()
        await traefik.check_other_paths_never_asked()
        traefik.upstream.clear()
        await traefik.check_blocked_search()
