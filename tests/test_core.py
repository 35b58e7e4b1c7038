"""The decision core on its own, with plain values: what every front door relies on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from multidict import CIMultiDict

from intercept.config import load_config
from intercept.core import Answer, Engine, Pass
from intercept.pages import load_pages, pages_for
from intercept.rules.ruleset import compile_rules
from intercept.tokens import AnswerTokens
from tests.conftest import spec
from tests.middleware_helpers import counted
from tests.upstream import RULES

ROOT = Path(__file__).parent.parent


@pytest.fixture
def engine() -> Engine:
    config = load_config(None, environ={}, overrides={"messages": str(ROOT / "messages")})
    return Engine(config, RULES, load_pages(config.pages_folder, survey_url=config.survey_url))


def headers(**pairs: str) -> CIMultiDict[str]:
    return CIMultiDict((k.replace("_", "-"), v) for k, v in pairs.items())


def test_precheck(engine: Engine) -> None:
    assert engine.precheck("/search?q=x", 100) is None
    refused = engine.precheck("/search?" + "a" * 9000, 100)
    assert refused is not None
    assert refused.status == 414
    refused = engine.precheck("/x", 10**6)
    assert refused is not None
    assert refused.status == 431
    refused = engine.precheck("http://elsewhere/x", 100)
    assert refused is not None
    assert refused.status == 400


def test_body_plan(engine: Engine) -> None:
    # every method's body: frameworks read a PUT or PATCH form as they read a POST one
    assert engine.body_plan("PUT", "/search?q=x", headers()) == engine.config.limits.body
    assert engine.body_plan("POST", "/other", headers()) is None
    assert engine.body_plan("POST", "/search", headers()) == engine.config.limits.body
    big = engine.body_plan("POST", "/search", headers(Content_Length="99999999"))
    assert isinstance(big, Answer)
    assert big.status == 413
    packed = engine.body_plan("POST", "/search", headers(Content_Encoding="gzip"))
    assert isinstance(packed, Answer)
    assert packed.status == 415


def test_decide_outcomes(engine: Engine) -> None:
    assert engine.decide("GET", "/other?q=blocked+example", headers(), None) == Pass(
        "/other?q=blocked+example"
    )
    assert engine.decide("GET", "/search?q=kites", headers(), None) == Pass("/search?q=kites")
    blocked = engine.decide("GET", "/search?q=bl0cked+ex4mple", headers(), None)
    assert isinstance(blocked, Answer)
    assert blocked.status == 200
    assert b"<h1>" in blocked.body
    assert b"bl0cked" not in blocked.body
    form = b"q=blocked+example"
    posted = engine.decide(
        "POST", "/search", headers(Content_Type="application/x-www-form-urlencoded"), form
    )
    assert isinstance(posted, Answer)
    shadow = engine.decide("GET", "/search?q=velvet+moth", headers(), None)
    assert shadow == Pass("/search?q=velvet+moth")
    assert engine.counts.value("searches", route="search") == 4


def test_an_autocomplete_block_is_counted_without_a_variant(engine: Engine) -> None:
    answer = engine.decide("GET", "/autocomplete?q=blocked+example", headers(), None)
    assert isinstance(answer, Answer)
    assert json.loads(answer.body) in ([], ["", []])  # the route's format, never the query
    assert dict(answer.headers)["X-Content-Type-Options"] == "nosniff"
    labels = {"category": "demo", "action": "block", "language": "en"}
    assert engine.counts.value("interventions", **labels, variant="none") == 1
    for variant in engine.pages.variants:  # no page was shown in any of them
        assert engine.counts.value("interventions", **labels, variant=variant) == 0
    page = engine.decide("GET", "/search?q=blocked+example", headers(), None)
    assert isinstance(page, Answer)
    shown = [
        engine.counts.value("interventions", **labels, variant=v) for v in engine.pages.variants
    ]
    assert sorted(shown) == [0] * (len(shown) - 1) + [1]


def test_internal_links(engine: Engine) -> None:
    go = engine.internal("GET", "/_intercept/go/survey?v=harm&l=en", headers())
    assert isinstance(go, Answer)
    assert go.status == 303
    assert dict(go.headers)["Location"].startswith(engine.config.survey_url)
    missing = engine.internal("GET", "/_intercept/go/nope", headers())
    assert isinstance(missing, Answer)
    assert missing.status == 404


def _continue_link(engine: Engine, method: str, form: bytes | None = None) -> str:
    """The continue link or button of a warn page for "purple teapot"."""
    content = headers(Content_Type="application/x-www-form-urlencoded") if form else headers()
    target = "/search" if form else "/search?q=purple+teapot"
    answer = engine.decide(method, target, content, form)
    assert isinstance(answer, Answer)
    found = re.search(r'(/_intercept/continue/[^"]+)"', answer.body.decode())
    assert found is not None
    return found.group(1)


def _continues(engine: Engine) -> dict[tuple[str, ...], float]:
    return counted(engine, "warn_continues")


def test_a_continue_is_counted_with_the_labels_of_the_page_it_left(engine: Engine) -> None:
    link = _continue_link(engine, "GET")
    assert _continues(engine) == {}
    opened = engine.internal("GET", link, headers())
    assert isinstance(opened, Answer)
    assert opened.status == 303
    [(labels, count)] = _continues(engine).items()
    category, variant, language = labels
    assert (category, language, count) == ("demo", "en", 1)
    assert variant in engine.pages.variants
    forged = engine.internal("GET", link[:-4] + "AAAA", headers())
    assert isinstance(forged, Answer)
    assert forged.status == 400
    assert sum(_continues(engine).values()) == 1  # a forged link counts nothing


def test_a_replayed_post_that_is_blocked_now_is_no_continue(engine: Engine) -> None:
    button = _continue_link(engine, "POST", b"q=purple+teapot")
    assert engine.internal("GET", button, headers()).status == 405  # type: ignore[union-attr]
    assert _continues(engine) == {}
    engine.use(compile_rules([spec("WARN-1", "purple teapot")]), engine.pages)  # now a block
    blocked = engine.internal("POST", button, headers())
    assert isinstance(blocked, Answer)
    assert blocked.status == engine.config.block_status
    assert _continues(engine) == {}
    engine.use(RULES, engine.pages)  # a warn again: the button lets the search on
    assert isinstance(engine.internal("POST", button, headers()), Pass)
    assert sum(_continues(engine).values()) == 1


def test_a_link_sealed_without_labels_counts_them_unknown(engine: Engine) -> None:
    sealed = engine.tokens.seal("search", "/search?q=purple+teapot", "purple teapot")
    assert engine.internal("GET", f"/_intercept/continue/{sealed}", headers()).status == 303  # type: ignore[union-attr]
    assert _continues(engine) == {("unknown", "unknown", "unknown"): 1}


def test_a_route_marked_answer_json_always_answers_json() -> None:
    config = load_config(None, environ={}, overrides={
        "messages": str(ROOT / "messages"),
        "routes": [{"name": "api", "path": "/api/search", "params": ["q"], "form_fields": ["q"],
                    "answer": "json"}],
    })  # fmt: skip
    engine = Engine(config, RULES, load_pages(config.pages_folder, survey_url=config.survey_url))
    browser = headers(Accept="text/html,*/*;q=0.8")
    blocked = engine.decide("GET", "/api/search?q=blocked+example", browser, None)
    assert isinstance(blocked, Answer)
    assert dict(blocked.headers)["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(blocked.body)["action"] == "block"
    form = headers(Content_Type="application/x-www-form-urlencoded")
    warned = engine.decide("POST", "/api/search", form, b"q=purple+teapot")
    assert isinstance(warned, Answer)
    onward = json.loads(warned.body)["continue"]
    assert onward["method"] == "POST"  # a warned POST goes on only by posting to it
    assert onward["href"].startswith("/_intercept/continue/")
    assert engine.internal("GET", onward["href"], headers()).status == 405  # type: ignore[union-attr]


def _asking_engine() -> Engine:
    config = load_config(None, environ={}, overrides={
        "messages": str(ROOT / "messages"),
        "survey": {"questions": [
            {"id": "why", "text": {"en": "Why?"},
             "options": [{"id": "curious", "text": {"en": "Curiosity"}},
                         {"id": "stop", "text": {"en": "I want to stop"}}]},
        ]},
    })  # fmt: skip
    return Engine(config, RULES, pages_for(config))


def _answer(engine: Engine, form: str) -> Answer:
    """The answer form posted through the routine every door runs: `begin`, then `decide`."""
    form_headers = headers(Content_Type="application/x-www-form-urlencoded")
    limit = engine.begin("POST", "/_intercept/answer", form_headers, 100)
    assert isinstance(limit, int)
    assert len(form) <= limit
    answered = engine.decide("POST", "/_intercept/answer", form_headers, form.encode())
    assert isinstance(answered, Answer)
    assert answered.status == 200
    return answered


def test_answers_never_outnumber_the_pages_shown() -> None:
    """Twelve pages shown; each token then posted three times with different options, plus
    forged and foreign tokens: twelve answers counted, no more."""
    engine = _asking_engine()
    tokens = []
    for _ in range(12):
        page = engine.decide("GET", "/search?q=blocked+example", headers(), None)
        assert isinstance(page, Answer)
        found = re.search(rb'name="t" value="([^"]+)"', page.body)
        assert found is not None
        tokens.append(found.group(1).decode())
    foreign = AnswerTokens.from_secret("a-different-secret-of-enough-length", 3600)
    forged = [t[:-3] + "AAA" for t in tokens] + [foreign.mint("harm", "en") for _ in range(5)]
    for round_ in ("curious", "stop", "curious"):
        for token in tokens + forged:
            _answer(engine, f"why={round_}&t={token}")
    answered = sum(counted(engine, "survey_answers").values())
    shown = sum(counted(engine, "interventions").values())
    assert (answered, shown) == (12, 12)


def test_the_answer_form_reads_nothing_but_option_ids() -> None:
    engine = _asking_engine()
    page = engine.decide("GET", "/search?q=blocked+example", headers(), None)
    assert isinstance(page, Answer)
    found = re.search(rb'name="t" value="([^"]+)"', page.body)
    assert found is not None
    thanks = _answer(engine, f"why=free+text+here&t={found.group(1).decode()}")
    assert b"free text" not in thanks.body
    assert counted(engine, "survey_answers") == {}
    assert _answer(engine, "why=\u00ff").status == 200  # not ASCII: no answer, still thanks


def test_pages_without_questions_have_no_form_and_no_answer_path(engine: Engine) -> None:
    page = engine.decide("GET", "/search?q=blocked+example", headers(), None)
    assert isinstance(page, Answer)
    assert b"<form" not in page.body
    assert "form-action 'none'" in dict(page.headers)["Content-Security-Policy"]
    refused = engine.begin("POST", "/_intercept/answer", headers(), 100)
    assert isinstance(refused, Answer)
    assert refused.status == 404
