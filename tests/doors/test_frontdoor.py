"""`intercept.doors.frontdoor`: the one routine every front door runs (begin, bounded read, decide),
with its blocking and awaitable drivers giving the same outcomes for the same reads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from multidict import CIMultiDict

from intercept.core import Answer, Engine, Pass
from intercept.doors.frontdoor import Outcome, Read, run, run_async, steps
from intercept.research.counting import Counts
from tests.test_core import engine  # noqa: F401  (the fixture)

Reader = Callable[[int], Read]


def both(engine: Engine, method: str, target: str, read: Reader, **head: str) -> Outcome:  # noqa: F811
    """The routine driven both ways; the outcomes must agree."""
    headers = CIMultiDict(head)
    asked: list[int] = []

    def blocking(limit: int) -> Read:
        asked.append(limit)
        return read(limit)

    async def awaitable(limit: int) -> Read:
        asked.append(limit)
        return read(limit)

    first = run(steps(engine, method, target, headers, 100), blocking)
    second = asyncio.run(run_async(steps(engine, method, target, headers, 100), awaitable))
    assert _shape(first) == _shape(second)
    assert len(asked) in (0, 2)  # both asked, or neither
    return first


def _shape(outcome: Outcome) -> object:
    """What must agree: a page's status (each page carries its own link tokens), or the
    pass itself, and the body read."""
    answer, body = outcome
    return (answer.status if isinstance(answer, Answer) else answer), body


def never(limit: int) -> Read:
    raise AssertionError(f"the body was read ({limit} bytes) where no read was planned")


def test_a_get_search_without_a_body_is_decided_on_its_target(engine: Engine) -> None:  # noqa: F811
    """Any method may carry a search body, so the plan asks; a door that finds none says
    None (WSGI without a length, aiohttp's `body_exists`), and the target is decided."""
    outcome, body = both(engine, "GET", "/search?q=bl0cked+ex4mple", lambda _: None)
    assert isinstance(outcome, Answer)
    assert body is None
    outcome, body = both(engine, "GET", "/search?q=kites", lambda _: None)
    assert outcome == Pass("/search?q=kites")


def test_a_body_search_is_read_up_to_the_plan_then_decided(engine: Engine) -> None:  # noqa: F811
    limits: list[int] = []

    def form(limit: int) -> Read:
        limits.append(limit)
        return b"q=blocked+example"

    outcome, body = both(engine, "POST", "/search", form,
                         **{"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert isinstance(outcome, Answer)
    assert body == b"q=blocked+example"
    assert limits == [engine.config.limits.body] * 2
    outcome, body = both(engine, "POST", "/search", lambda _: b"q=kites",
                         **{"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert isinstance(outcome, Pass)
    assert body == b"q=kites"  # handed on: the stream no longer holds it


@pytest.mark.parametrize("status", [400, 413])
def test_a_body_that_cannot_be_read_gets_the_error_page(engine: Engine, status: int) -> None:  # noqa: F811
    outcome, body = both(engine, "POST", "/search", lambda _: status)
    assert isinstance(outcome, Answer)
    assert outcome.status == status
    assert body is None


def test_no_body_after_all_is_decided_on_the_target(engine: Engine) -> None:  # noqa: F811
    outcome, body = both(engine, "POST", "/search?q=kites", lambda _: None)
    assert outcome == Pass("/search?q=kites")
    assert body is None


def test_refusals_before_the_body_never_read_it(engine: Engine) -> None:  # noqa: F811
    outcome, _ = both(engine, "GET", "/search?" + "a" * 9000, never)
    assert isinstance(outcome, Answer)
    assert outcome.status == 414


def _counted(counts: Counts, name: str) -> float:
    """Every sample of the counter `name`, whatever its labels."""
    counts.sync()
    return sum(
        sample.value
        for metric in counts.registry.collect()
        if metric.name == f"intercept_{name}"
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


@pytest.mark.parametrize(
    ("counting", "searches", "interventions"),
    [({}, 1, 1), ({"count_search": False}, 0, 1), ({"count_intervention": False}, 1, 0)],
)
def test_the_counting_flags_reach_the_decision(
    engine: Engine,  # noqa: F811
    counting: dict[str, bool],
    searches: int,
    interventions: int,
) -> None:
    """The decision service asks about one nginx search twice (the decision, then the page)
    and counts each part once: the routine hands `decide` its counting flags."""
    routine = steps(engine, "GET", "/search?q=blocked+example", CIMultiDict(), 100, **counting)
    outcome, _ = run(routine, lambda _: None)  # a GET: no body after all
    assert isinstance(outcome, Answer)
    assert _counted(engine.counts, "searches") == searches
    assert _counted(engine.counts, "interventions") == interventions
