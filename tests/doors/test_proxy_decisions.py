"""Decisions only the reverse proxy makes: continue links forged, expired or off the site,
route bypasses, search bodies, headers relayed as sent, custom routes, a replayed POST decided
again. The cases every front door shares (block, warn and continue, shadow, autocomplete,
clicks, extraction) run in `tests/doors/test_doors.py`."""

from __future__ import annotations

import gzip
import json
import re
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from intercept.rules.ruleset import compile_rules
from tests.conftest import spec
from tests.upstream import RULES, Proxy, fetch, raw_exchange, running_proxy


async def test_forged_continue_link_is_400(proxy: Proxy) -> None:
    base, _ = proxy
    status, _, _ = await fetch("GET", base + "/_intercept/continue/AAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert status == 400


async def test_rule_language_wins_over_accept_language(proxy: Proxy) -> None:
    base, _ = proxy
    _, headers, body = await fetch(
        "GET", base + "/search?q=" + quote("blaue straße"), headers={"Accept-Language": "en-US"}
    )
    assert headers["Content-Language"] == "de"
    assert b'lang="de"' in body


async def test_expired_continue_link_is_400(proxy: Proxy) -> None:
    base, engine = proxy
    sealed = engine.tokens.seal("search", "/search?q=purple+teapot", "purple teapot", now=0)
    status, _, _ = await fetch("GET", base + f"/_intercept/continue/{sealed}")
    assert status == 400


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("PUT", "/search?q=blocked+example"),
        ("DELETE", "/search?q=blocked+example"),
        ("OPTIONS", "/search?q=blocked+example"),
        ("GET", "/%73earch?q=blocked+example"),
        ("GET", "//search?q=blocked+example"),
        ("GET", "/search/?q=blocked+example"),
        ("GET", "/./search?q=blocked+example"),
        ("GET", "/x/../search?q=blocked+example"),
        ("GET", "/search;jsessionid=1?q=blocked+example"),
        ("GET", "/SEARCH?q=blocked+example"),
        ("GET", "/search?q[]=blocked+example"),
        ("GET", "/search?x=1;q=blocked+example"),
    ],
)
async def test_route_bypasses_are_closed(proxy: Proxy, method: str, target: str) -> None:
    base, _ = proxy
    _, headers, _ = await fetch(method, base + target)
    assert "X-Upstream" not in headers


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        (
            "application/x-www-form-urlencoded; charset=utf-16-le",
            "q=blocked example".encode("utf-16-le"),
            200,
        ),
        ("application/x-www-form-urlencoded; charset=nope", b"q=blocked+example", 415),
        ("application/json; charset=utf-16", '{"q": "blocked example"}'.encode("utf-16"), None),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="q"\r\nContent-Type: text/plain; '
            b"charset=nope\r\n\r\nx\r\n--b--\r\n",
            415,
        ),
        ("application/x-www-form-urlencoded", b"&".join(b"q=%d" % i for i in range(100)), 415),
    ],
)
async def test_search_bodies_are_read_like_the_upstream_or_refused(
    proxy: Proxy, content_type: str, body: bytes, status: int | None
) -> None:
    base, _ = proxy
    got, headers, _ = await fetch(
        "POST", base + "/search", data=body, headers={"Content-Type": content_type}
    )
    assert "X-Upstream" not in headers
    if status is not None:
        assert got == status


async def test_compressed_search_body_is_refused_and_other_bodies_pass_as_sent(
    proxy: Proxy,
) -> None:
    base, _ = proxy
    packed = gzip.compress(b"q=blocked+example")
    gz = {"Content-Encoding": "gzip", "Content-Type": "application/x-www-form-urlencoded"}
    status, _, _ = await fetch("POST", base + "/search", data=packed, headers=gz)
    assert status == 415
    status, _, body = await fetch("POST", base + "/echo", data=packed, headers=gz)
    assert status == 200  # the upstream unpacked the bytes it got: they arrived as sent
    assert json.loads(body)["body"] == "q=blocked+example"


async def test_a_token_lifts_only_its_own_query(proxy: Proxy) -> None:
    base, engine = proxy
    token = engine.tokens.sign("search", "purple teapot")
    _, headers, _ = await fetch(
        "GET", base + f"/search?q=purple+teapot&_intercept_continue={token}"
    )
    assert headers["X-Upstream"] == "results"
    engine.rules = compile_rules([*RULES.rules, spec("WARN-2", "green kite", action="warn")])
    _, headers, _ = await fetch(
        "GET", base + f"/search?q=purple+teapot&q=green+kite&_intercept_continue={token}"
    )
    assert "X-Upstream" not in headers


async def test_warn_with_a_long_target_falls_back_to_the_page(proxy: Proxy) -> None:
    base, _ = proxy
    status, _, body = await fetch("GET", base + "/search?q=purple+teapot&pad=" + "x" * 6000)
    assert status == 200
    assert b"/_intercept/continue/" not in body


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(b"/search?q=blocked+example\x01", id="parser error"),
        pytest.param(b"http://elsewhere/search?q=blocked", id="absolute-form target"),
    ],
)
async def test_a_bad_request_line_is_400_and_never_echoed(proxy: Proxy, target: bytes) -> None:
    base, _ = proxy
    answer = await raw_exchange(base, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n", 1000)
    assert b" 400 " in answer[:20]
    assert b"blocked" not in answer


async def test_every_x_forwarded_for_header_is_kept(proxy: Proxy) -> None:
    base, _ = proxy
    async with aiohttp.ClientSession() as session:
        headers = [("X-Forwarded-For", "192.0.2.1"), ("X-Forwarded-For", "192.0.2.2")]
        async with session.get(base + "/echo", headers=headers) as response:
            seen = dict((k.lower(), v) for k, v in (await response.json())["headers"])
    assert seen["x-forwarded-for"] == "192.0.2.1, 192.0.2.2, 127.0.0.1"


async def test_too_many_query_values_are_refused_not_forwarded(proxy: Proxy) -> None:
    base, _ = proxy
    target = "/search?" + "&".join(f"q={i}" for i in range(100)) + "&q=blocked+example"
    status, headers, _ = await fetch("GET", base + target)
    assert status == 400
    assert "X-Upstream" not in headers


async def test_own_answers_name_no_software_version(proxy: Proxy) -> None:
    base, _ = proxy
    for target in ("/search?q=blocked+example", "/autocomplete?q=blocked+example",
                   "/_intercept/go/survey?v=harm&l=en", "/_intercept/go/nope"):  # fmt: skip
        _, headers, _ = await fetch("GET", base + target)
        assert headers["Server"] == "intercept"


async def test_custom_routes_path_group_and_json_pointer(upstream: TestServer) -> None:
    routes = [
        {"name": "path", "path_regex": r"^/s/(?P<q>[^/]+)$"},
        {"name": "api", "path": "/echo-api", "json_pointers": ["/query", "/filters/0/text"]},
        {"name": "suggest", "path": "/suggest", "params": ["q"], "kind": "autocomplete"},
    ]
    async with running_proxy(f"http://127.0.0.1:{upstream.port}", routes=routes) as (base, _):
        status, headers, _ = await fetch("GET", base + "/s/bl0cked%20ex4mple")
        assert "X-Upstream" not in headers
        assert status == 200
        status, headers, _ = await fetch("GET", base + "/s/kites")
        assert status == 404  # forwarded: the upstream has no such page
        assert headers["Content-Type"].startswith("text/plain")  # its answer, not ours
        body = {"query": "kites", "filters": [{"text": "blocked example"}]}
        _, headers, _ = await fetch("POST", base + "/echo-api", json=body)
        assert "X-Upstream" not in headers
        _, headers, _ = await fetch("POST", base + "/echo-api", json={"query": "kites"})
        assert headers["X-Upstream"] == "yes"
        status, headers, answer = await fetch("GET", base + "/suggest?q=blocked+example")
        assert json.loads(answer) == ["", []]  # OpenSearch shape, the query never echoed
        assert headers["Content-Type"].startswith("application/x-suggestions+json")


async def test_a_replayed_post_is_decided_again_on_the_rules_now_serving(proxy: Proxy) -> None:
    base, engine = proxy
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    _, _, page = await fetch("POST", base + "/search", data=b"q=purple+teapot", headers=form)
    action = re.search(rb'action="(/_intercept/continue/[^"]+)"', page)
    assert action is not None
    stricter = compile_rules([spec("WARN-1", "purple teapot", action="block")])
    engine.use(stricter, engine.pages)  # a reload made the warn rule a block rule
    status, headers, body = await fetch("POST", base + action.group(1).decode(), data=b"")
    assert status == 200
    assert "X-Upstream" not in headers  # never reached the search front-end
    assert b"/_intercept/go/" in body
    assert b"/_intercept/continue/" not in body


async def test_a_replayed_post_checks_its_url_query_too(proxy: Proxy) -> None:
    base, engine = proxy
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    _, _, page = await fetch(
        "POST", base + "/search?q=velvet+moth", data=b"q=purple+teapot", headers=form
    )
    action = re.search(rb'action="(/_intercept/continue/[^"]+)"', page)
    assert action is not None  # warned: the shadow rule in the URL changed nothing
    stricter = compile_rules(
        [spec("WARN-1", "purple teapot", action="warn"), spec("S-1", "velvet moth")]
    )
    engine.use(stricter, engine.pages)  # the URL's phrase is now a block rule
    status, headers, body = await fetch("POST", base + action.group(1).decode(), data=b"")
    assert status == 200
    assert "X-Upstream" not in headers
    assert b"/_intercept/go/" in body


@pytest.mark.parametrize(
    "content_type",
    [
        b"application/x-www-form-url\xffencoded",
        b"multipart/form-data; boundary=X\xffX",
        b"application/x-www-form-urlencoded\xc3",  # half of a two-byte character
    ],
)
async def test_header_bytes_that_cannot_be_forwarded_as_sent_are_refused(
    proxy: Proxy, content_type: bytes
) -> None:
    # aiohttp's client would drop the byte: the upstream would get a form never read
    base, _ = proxy
    body = b"q=blocked+example"
    request = (b"POST /search HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Type: "
               + content_type + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)  # fmt: skip
    answer = await raw_exchange(base, request, 100_000)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"X-Upstream" not in answer


async def test_utf8_header_values_are_forwarded_as_sent(proxy: Proxy) -> None:
    base, _ = proxy
    status, _, body = await fetch("GET", base + "/echo", headers={"X-Note": "café ☕"})
    assert status == 200
    assert dict(json.loads(body)["headers"])["X-Note"] == "café ☕"


async def test_headers_the_client_did_not_send_are_not_added(proxy: Proxy) -> None:
    base, _ = proxy
    answer = await raw_exchange(
        base, b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 100_000
    )
    sent = {name.lower() for name, _ in json.loads(answer.partition(b"\r\n\r\n")[2])["headers"]}
    assert sent.isdisjoint({"accept", "accept-encoding", "user-agent", "content-type"})


async def test_a_request_without_host_gets_no_made_up_forwarded_host(proxy: Proxy) -> None:
    base, _ = proxy
    answer = await raw_exchange(base, b"GET /echo HTTP/1.0\r\n\r\n", 100_000)
    sent = dict(json.loads(answer.partition(b"\r\n\r\n")[2])["headers"])
    assert "X-Forwarded-Host" not in sent
    answer = await raw_exchange(
        base, b"GET /echo HTTP/1.0\r\nHost: search.example\r\n\r\n", 100_000
    )
    assert (
        dict(json.loads(answer.partition(b"\r\n\r\n")[2])["headers"])["X-Forwarded-Host"]
        == "search.example"
    )


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "GET"])
async def test_a_search_body_is_read_whatever_the_method(proxy: Proxy, method: str) -> None:
    # Werkzeug, for one, reads a form body of any method as request.form
    base, _ = proxy
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, headers, _ = await fetch(
        method, base + "/search", data=b"q=blocked+example", headers=form
    )
    assert status == 200
    assert "X-Upstream" not in headers
    status, headers, _ = await fetch(method, base + "/search", data=b"q=kites", headers=form)
    assert headers["X-Upstream"] == "results"


@pytest.mark.parametrize("prefix", ["//evil.example/..", "/\\evil.example/.."])
async def test_a_warned_search_never_continues_off_the_site(proxy: Proxy, prefix: str) -> None:
    # the path is /search to Intercept, but "//evil.example/../search?..." in a Location
    # header is another host to a browser
    base, engine = proxy
    target = prefix + "/search?q=purple+teapot"
    answer = await raw_exchange(
        base, f"GET {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode(), 100_000
    )
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"/_intercept/continue/" not in answer  # the page, without a continue link
    sealed = engine.tokens.seal("search", target, "purple teapot")  # as an older build made
    status, headers, _ = await fetch("GET", base + "/_intercept/continue/" + sealed)
    assert status == 400
    assert "Location" not in headers


async def test_an_overlong_token_is_ignored_not_a_500(proxy: Proxy) -> None:
    base, _ = proxy
    status, headers, body = await fetch(
        "GET", base + "/search?q=purple+teapot&_intercept_continue=" + "9" * 4400 + ".x"
    )
    assert status == 200
    assert "X-Upstream" not in headers  # the warn page again
    assert b"<html" in body


async def test_a_search_warned_on_two_values_continues_with_one_token(proxy: Proxy) -> None:
    # the token is signed for every warned text; once it was signed for one, and a search
    # warned on two could never continue
    base, _ = proxy
    target = "/search?q=purple+teapot&q=green+kettle"
    status, headers, body = await fetch("GET", base + target)
    assert "X-Upstream" not in headers
    link = re.search(rb'href="(/_intercept/continue/[^"]+)"', body)
    assert link is not None
    status, headers, _ = await fetch("GET", base + link.group(1).decode())
    assert status == 303
    location = headers["Location"]
    status, headers, _ = await fetch("GET", base + location)
    assert status == 200
    assert headers["X-Upstream"] == "results"
    # the token covers exactly those texts: not one of them alone
    token = location.rpartition("_intercept_continue=")[2]
    alone = f"/search?q=purple+teapot&_intercept_continue={token}"
    status, headers, _ = await fetch("GET", base + alone)
    assert "X-Upstream" not in headers  # warned again
