"""The front-door routine, written once: begin, read the body if the plan asks for it, decide.

Every front door runs the same steps with the core (`intercept.core.Engine`): `begin` (limits,
`/_intercept/` links, the body plan), then, if the plan names a size, a bounded read of the
body, then `decide`. Only the read differs from door to door (aiohttp's stream, WSGI's
`wsgi.input`, ASGI's `receive`), so the steps are a sans-IO generator (`steps`) that yields the
most body bytes it needs and is sent what the door read, and two drivers run it: `run` with a
plain `read(limit)` and `run_async` with an awaitable one.

What a door's `read(limit)` returns: the body (`bytes`, at most `limit`), None when the request
has none, or an HTTP status (`int`) when it cannot be read (413 over `limit`, 400 for a
malformed length or a client gone mid-upload), which becomes the core's error page. The routine
returns the outcome (an `Answer` to send, or a `Pass`) and the body read, which the door hands
on to the application (the stream no longer holds it). A `Pass` carrying a `method` came from
`begin` itself (the continue button of a warned POST search): no body was read for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator

from intercept.core import Answer, Engine, Headers, Pass

__all__ = ["Outcome", "Read", "run", "run_async", "steps"]

Outcome = tuple[Answer | Pass, bytes | None]
Read = bytes | int | None
"""What a door read: the body, an error status, or None (no body)."""


def steps(
    engine: Engine,
    method: str,
    target: str,
    headers: Headers,
    header_bytes: int,
    *,
    has_body: bool = True,
    count_search: bool = True,
    count_intervention: bool = True,
) -> Generator[int, Read, Outcome]:
    """The routine for one request (see the module docstring). `has_body` goes to
    `Engine.begin`, `count_search` and `count_intervention` to `Engine.decide`: the decision
    service asks about one search twice and counts each part once."""
    step = engine.begin(method, target, headers, header_bytes, has_body=has_body)
    if isinstance(step, Answer | Pass):
        return step, None
    body = None
    if step is not None:
        read = yield step
        if isinstance(read, int):
            return engine.error(read, headers), None
        body = read
    outcome = engine.decide(
        method,
        target,
        headers,
        body,
        count_search=count_search,
        count_intervention=count_intervention,
    )
    return outcome, body


def run(routine: Generator[int, Read, Outcome], read: Callable[[int], Read]) -> Outcome:
    """Drive `routine` with a blocking `read(limit)`."""
    try:
        limit = next(routine)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    try:
        routine.send(read(limit))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise RuntimeError("the front-door routine asked for the body twice")


async def run_async(
    routine: Generator[int, Read, Outcome], read: Callable[[int], Awaitable[Read]]
) -> Outcome:
    """Drive `routine` with an awaitable `read(limit)`."""
    try:
        limit = next(routine)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    try:
        routine.send(await read(limit))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise RuntimeError("the front-door routine asked for the body twice")
