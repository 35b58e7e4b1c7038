"""The decision core every front door shares: from a request's parts to an answer or a pass.

A front door (the reverse proxy, the decision service, the middlewares) asks the `Engine` two
things, in order, with framework-neutral values:

1. `begin(method, target, headers, header_bytes)`, before any body is read: limits
   (`precheck`), `/_intercept/` paths (`internal`: click-through and continue links), and
   whether to read the body to find the query, and up to how much (`body_plan`);
2. `decide(method, target, headers, body)`: an `Answer` to send instead of results (a
   deterrence page, an empty suggestion list, an error), or `Pass` to let the request through
   (with the continue token stripped from its target).

Counting happens here, so every front door counts the same way.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from time import perf_counter
from urllib.parse import parse_qs

from intercept.config import Config, Experiment
from intercept.extract import (
    CompiledRoute,
    RouteTable,
    UnreadableBody,
    compile_routes,
    find_route,
    texts_from_body,
    texts_from_target,
)
from intercept.pages import ANSWER_HREF, Page, Pages
from intercept.preflight import Caution
from intercept.research.counting import Counts
from intercept.research.ledger import NO_PAGE
from intercept.research.variants import VariantChooser, VariantMode
from intercept.rules.ruleset import Match, RuleSet, decide
from intercept.rules.rulespec import Action
from intercept.tokens import (
    TOKEN_PARAM,
    AnswerTokens,
    ContinueTokens,
    Labels,
    same_site,
    strip_param,
)

__all__ = ["INTERNAL_PREFIX", "Answer", "Engine", "Pass"]

INTERNAL_PREFIX = "/_intercept/"
_ANSWER_BYTES_MAX = 4096  # the answer form: a token and at most three short option ids
_ANSWER_FIELDS_MAX = 16
_MAX_CONTINUE_LINK = 4096
_MAX_SEALED_BODY = 4096
_NOSNIFF = ("X-Content-Type-Options", "nosniff")
_OWN = (("Server", "intercept"),)  # our own answers name no software version
_NO_STORE = (("Referrer-Policy", "no-referrer"), ("Cache-Control", "no-store"))

Headers = Mapping[str, str]  # case-insensitive in practice (aiohttp's, or a CIMultiDict)


@dataclass(frozen=True, slots=True)
class Answer:
    """A response Intercept sends itself."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Pass:
    """Let the request through to `target`; a replayed POST search carries its own `body`,
    `method` and `content_type`."""

    target: str
    body: bytes | None = None
    method: str | None = None
    content_type: str | None = None


@dataclass(slots=True)
class Engine:
    """What requests share: configuration, the current rule set (swapped whole on reload),
    pages, routes, tokens and counters. Front doors hold one and may attach their own state
    (the proxy's upstream client) in `extras`."""

    config: Config
    rules: RuleSet
    pages: Pages
    counts: Counts = field(default_factory=Counts)
    routes: RouteTable = field(init=False)
    tokens: ContinueTokens = field(init=False)
    answers: AnswerTokens = field(init=False)  # the page's answer form (survey.questions)
    chooser: VariantChooser = field(init=False)
    experiments: tuple[_Running, ...] = field(init=False)  # config.experiments, ready to draw
    extras: dict[str, object] = field(default_factory=dict)
    replays_posts: bool = True  # False where a continued POST search cannot be resent
    rules_loaded_at: float = field(init=False)
    reload_problems: tuple[str, ...] = ()  # why the last reload was refused, if it was
    cautions: tuple[Caution, ...] = ()  # production problems of the settings (preflight)

    def __post_init__(self) -> None:
        self.routes = compile_routes(self.config.routes)
        self.rules_loaded_at = time.time()
        self.counts.rules(len(self.rules), self.rules.version, self.rules_loaded_at)
        warn = self.config.warn
        secret = warn.secrets()  # the first signs, all verify: secrets rotate
        self.tokens = ContinueTokens.from_secret(secret, warn.ttl_seconds)
        shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")  # set for processes serving together
        self.answers = AnswerTokens.from_secret(
            secret,
            self.config.survey.answer_ttl_seconds,
            Path(shared, "answers") if shared else None,
        )
        self.chooser, self.experiments = _choosers(self.config, self.pages)

    def use(self, rules: RuleSet, pages: Pages) -> None:
        """Serve `rules` and `pages` from the next request on (a reload). Each is swapped as
        one reference: a request in flight keeps the rule set it started with."""
        self.chooser, self.experiments = _choosers(self.config, pages)
        self.pages, self.rules = pages, rules
        self.rules_loaded_at = time.time()
        self.reload_problems = ()
        self.counts.rules(len(rules), rules.version, self.rules_loaded_at)

    # --- answers ------------------------------------------------------------------------------

    def page_answer(self, page: Page, status: int) -> Answer:
        return Answer(status, (*page.headers, *_OWN), page.body)

    def error(
        self, status: int, headers: Headers | None = None, *, allow: str | None = None
    ) -> Answer:
        """A short error page in the searcher's language; never echoes the request. `allow`:
        the `Allow` header of a 405 (RFC 9110 requires one; empty means no method will do)."""
        accept = headers.get("Accept-Language") if headers is not None else None
        language = self.pages.choose_language(None, accept)
        answer = self.page_answer(self.pages.error_page(status, language), status)
        if allow is None:
            return answer
        return Answer(status, (*answer.headers, ("Allow", allow)), answer.body)

    # --- the three questions --------------------------------------------------------------------

    def precheck(self, target: str, header_bytes: int) -> Answer | None:
        """Limits on the request line and headers, and targets that are not a path."""
        limits = self.config.limits
        if len(target) > limits.request_target:
            return self.error(414)
        if header_bytes > limits.headers:
            return self.error(431)
        if not target.startswith("/"):
            return self.error(400)  # absolute-form or asterisk targets: not for us
        return None

    def begin(
        self,
        method: str,
        target: str,
        headers: Headers,
        header_bytes: int,
        *,
        has_body: bool = True,
    ) -> Answer | Pass | int | None:
        """Every front door's first step, before any body is read: `precheck`, then
        `/_intercept/` paths (`internal`), then `body_plan`. An `Answer` or `Pass`: act on it
        as it is. An int: read at most that many body bytes, then call `decide` with them
        (more is a 413). None: call `decide` without a body. A request known to have no body
        (`has_body` False) skips the body plan."""
        refused = self.precheck(target, header_bytes)
        if refused is not None:
            return refused
        if target.startswith(INTERNAL_PREFIX):
            if method == "POST" and target == ANSWER_HREF and self.pages.asks:
                return _ANSWER_BYTES_MAX  # the answer form: read it, then `decide`
            return self.internal(method, target, headers)
        if not has_body:
            return None
        return self.body_plan(method, target, headers)

    def body_plan(self, method: str, target: str, headers: Headers) -> int | Answer | None:
        """None: do not read the body. An int: read at most that many bytes, then call
        `decide` with them (more is a 413). An `Answer`: refuse without reading."""
        path = target.partition("?")[0]
        if path.startswith(INTERNAL_PREFIX):
            return None
        found = find_route(self.routes, path)
        if found is None or not found[0].reads_body_for(method):
            return None
        if headers.get("Content-Encoding", "identity").lower() != "identity":
            return self.error(415, headers)  # a compressed search body could hide a query
        limit = self.config.limits.body
        declared = headers.get("Content-Length")
        if (
            declared is not None
            and declared.isascii()
            and declared.isdigit()
            and int(declared) > limit
        ):
            return self.error(413, headers)
        return limit

    def decide(
        self,
        method: str,
        target: str,
        headers: Headers,
        body: bytes | None,
        *,
        count_search: bool = True,
        count_intervention: bool = True,
    ) -> Answer | Pass:
        """The decision for one request (see the module docstring). A flow that asks twice
        about one search (nginx: the decision, then the page) counts each part once.
        Decisions on search routes are timed (`intercept_decision_seconds`). The answer form's
        POST (`begin` asked for its body) is counted and thanked here."""
        if target == ANSWER_HREF and method == "POST" and self.pages.asks:
            return self.answered(headers, body)
        found = find_route(self.routes, target.partition("?")[0])
        if found is None:
            return Pass(target)
        started = perf_counter()
        try:
            return self._decide(
                found, method, target, headers, body, count_search, count_intervention
            )
        finally:
            self.counts.decided(perf_counter() - started)

    def _decide(
        self,
        found: tuple[CompiledRoute, re.Match[str] | None],
        method: str,
        target: str,
        headers: Headers,
        body: bytes | None,
        count_search: bool,
        count_intervention: bool,
    ) -> Answer | Pass:
        rules = self.rules  # one rule set for the whole request, even across a reload
        limits = self.config.limits
        query_string = target.partition("?")[2]
        route, path_match = found
        if count_search:
            self.counts.search(route.name)
        try:
            texts = texts_from_target(route, path_match, query_string)
        except UnreadableBody:
            return self.error(400, headers)  # more query values than are searched
        if max(map(len, texts), default=0) > limits.query:
            return self.error(414, headers)
        if body is not None:
            try:
                body_texts = texts_from_body(route, headers.get("Content-Type", ""), body)
            except UnreadableBody:
                return self.error(415, headers)
            if max(map(len, body_texts), default=0) > limits.query:
                return self.error(413, headers)
            texts += body_texts
        token = None
        if TOKEN_PARAM in query_string:
            target, token = strip_param(target, TOKEN_PARAM)
        decided = decide(rules, texts)
        if decided is None:
            return Pass(target, body)
        match, _ = decided
        if match.action is Action.SHADOW:
            # counted, never shown: the searcher gets results as usual
            if count_search:  # with the search: a shadow hit never asks for a page
                self.counts.intervention(
                    match.category, match.action.value, match.language, NO_PAGE
                )
                self.counts.shadow(match.rule_id)
            return Pass(target, body)
        # a token lifts a warn only when it was issued for the warned texts here, all of them
        warned = _warned(rules, texts) if match.action is Action.WARN else []
        if warned and token is not None and self.tokens.verify(token, route.name, warned):
            return Pass(target, body)  # counted when the warning was shown
        return self._intervene(
            method, headers, route, match, target, warned, body, count=count_intervention
        )

    def _intervene(
        self,
        method: str,
        headers: Headers,
        route: CompiledRoute,
        match: Match,
        target: str,
        warned: list[str],
        body: bytes | None,
        *,
        count: bool,
    ) -> Answer:
        """The answer to a block or warn `match`; `warned`: the texts a warn's continue
        token is signed for."""
        language = self.pages.choose_language(match.language, headers.get("Accept-Language"))
        if route.route.kind == "autocomplete":
            # no page is shown, so no variant: these must not swell a variant's page views,
            # the denominator of its click-through
            if count:
                self.counts.intervention(match.category, match.action.value, language, NO_PAGE)
            return _suggestions(route)
        variant = self._choose(count)
        if count:
            self.counts.intervention(match.category, match.action.value, language, variant)
        status = self.config.block_status
        api = route.route.answer == "json" or _prefers_json(headers.get("Accept"))
        if match.action is Action.WARN:
            form = (headers.get("Content-Type", ""), body) if body else None
            if form is not None and not self.replays_posts:
                # this front door cannot resend the search body: no continue link
                return self._shown(api, language, variant, match, status)
            replayable = method in ("GET", "HEAD") or (
                form is not None and len(form[1]) <= _MAX_SEALED_BODY
            )
            # "//host/../search" is a search here, but a link to it would leave the site
            if replayable and same_site(target):
                labels = (match.category, variant, language)
                sealed = self.tokens.seal(route.name, target, warned, form=form, labels=labels)
                href = f"{INTERNAL_PREFIX}continue/{sealed}"
                if len(href) <= _MAX_CONTINUE_LINK:  # a longer link could not be followed
                    post = form is not None
                    if api:
                        page = self.pages.json_answer(
                            language, variant, match.action.value, href, post=post
                        )
                    else:
                        token = self._answer_token(variant, language)
                        page = self.pages.warn(
                            language, variant, href, post=post, answer_token=token
                        )
                    return self.page_answer(page, status)
        return self._shown(api, language, variant, match, status)

    def _shown(self, api: bool, language: str, variant: str, match: Match, status: int) -> Answer:
        """The intervention without a way on: the page, or for an API client its JSON."""
        if api:
            page = self.pages.json_answer(language, variant, match.action.value)
        else:
            page = self.pages.block(language, variant, self._answer_token(variant, language))
        return self.page_answer(page, status)

    def _choose(self, shown: bool) -> str:
        """The message variant of a page: drawn as today's experiment says, if one runs
        (then a `shown` page is recorded for it), else as `variants` says."""
        day = int(time.time() // 86_400)
        for running in self.experiments:
            if running.first_day <= day <= running.last_day:
                if shown:
                    experiment = running.experiment
                    self.counts.count("experiment_pages", experiment.name, experiment.design)
                return running.chooser.choose()
        return self.chooser.choose()

    def _answer_token(self, variant: str, language: str) -> str | None:
        """A fresh token for the page's answer form, where the pages ask questions."""
        if not self.pages.asks:
            return None
        return self.answers.mint(variant, self.pages.language_of(language))

    def answered(self, headers: Headers, body: bytes | None) -> Answer:
        """The answer form posted: with a valid, unspent token, one count per question
        answered with one of its options (anything else in the form is ignored: no free
        text is ever read); then, whatever came, the thank-you page (in the page's language
        and variant when the token says them)."""
        form: dict[str, list[str]] = {}
        kind = headers.get("Content-Type", "").partition(";")[0].strip().lower()
        if body and kind == "application/x-www-form-urlencoded":
            try:
                form = parse_qs(body.decode("ascii"), max_num_fields=_ANSWER_FIELDS_MAX)
            except (UnicodeDecodeError, ValueError):
                form = {}  # option ids and the token are ASCII; anything else is no answer
        spent = self.answers.spend(form.get("t", [""])[0])
        if spent is None:
            accept = headers.get("Accept-Language")
            language = self.pages.choose_language(None, accept)
            variant = self._choose(False)
        else:
            variant, language = spent
            for question in self.config.survey.questions:
                chosen = form.get(question.id, [""])[0]
                if any(option.id == chosen for option in question.options):
                    self.counts.count("survey_answers", question.id, chosen, variant, language)
        return self.page_answer(self.pages.thanks(language, variant), 200)

    def internal(self, method: str, target: str, headers: Headers) -> Answer | Pass:
        """`/_intercept/go/<link-id>` (count the click, 303 to its address) and
        `/_intercept/continue/<sealed>` (on to the results of a warned search)."""
        path, _, query_string = target.partition("?")
        kind, _, arg = path[len(INTERNAL_PREFIX) :].partition("/")
        if kind == "go" and arg:
            query = parse_qs(query_string)
            variant = query.get("v", [""])[0]
            language = query.get("l", [None])[0]
            address = self.pages.link_target(arg, language=language, variant=variant)
            if address is None:
                return self.error(404, headers)
            known = variant if variant in self.pages.variants else "unknown"
            self.counts.click(arg, known)
            return Answer(303, (("Location", address), *_NO_STORE, *_OWN))
        if kind == "continue" and arg:
            continuation = self.tokens.open(arg)
            if continuation is None:
                return self.error(400, headers)
            if continuation.form is not None:  # a POST search, replayed as it was sent
                if method != "POST":  # only the page's button replays it, never a link
                    return self.error(405, headers, allow="POST" if self.replays_posts else "")
                content_type, body = continuation.form
                outcome = self._replay(continuation.target, content_type, body, headers)
                if isinstance(outcome, Pass):  # not blocked since: the searcher goes on
                    self._continued(continuation.labels)
                return outcome
            self._continued(continuation.labels)
            return Answer(303, (("Location", continuation.target), *_NO_STORE, *_OWN))
        if kind == "answer" and not arg and self.pages.asks:  # only the form posts to it
            return self.error(405, headers, allow="POST")
        return self.error(404, headers)

    def _continued(self, labels: Labels) -> None:
        """Count a searcher who went on from a warn page: the deterrence outcome (the share
        of warn pages shown that were continued past, per variant)."""
        category, variant, language = labels
        known = variant if variant in self.pages.variants else "unknown"
        self.counts.count("warn_continues", category, known, language)

    def _replay(
        self, target: str, content_type: str, body: bytes, headers: Headers
    ) -> Answer | Pass:
        """A warned POST search resent by the interstitial's button: counted as a search (as
        a continued GET search is) and decided again on the rules now serving, so a warn
        rule made a block rule since the page was shown blocks it; a warn still lets it on."""
        found = find_route(self.routes, target.partition("?")[0])
        if found is None:
            return Pass(target, body, "POST", content_type)
        route, path_match = found
        self.counts.search(route.name)
        try:
            texts = texts_from_target(route, path_match, target.partition("?")[2])
            texts += texts_from_body(route, content_type, body)
        except UnreadableBody:
            return self.error(415, headers)
        decided = decide(self.rules, texts)
        if decided is not None and decided[0].action is Action.BLOCK:
            match = decided[0]
            language = self.pages.choose_language(match.language, headers.get("Accept-Language"))
            variant = self._choose(True)
            self.counts.intervention(match.category, match.action.value, language, variant)
            page = self.pages.block(language, variant, self._answer_token(variant, language))
            return self.page_answer(page, self.config.block_status)
        return Pass(target, body, "POST", content_type)


@dataclass(frozen=True, slots=True)
class _Running:
    """An experiment ready to draw: its days as Unix day numbers, both included."""

    experiment: Experiment
    first_day: int
    last_day: int
    chooser: VariantChooser


def _choosers(config: Config, pages: Pages) -> tuple[VariantChooser, tuple[_Running, ...]]:
    """The variant chooser of `variants`, and one per experiment, over the variants `pages`
    has."""

    def chooser(weights: Mapping[str, float], mode: VariantMode) -> VariantChooser:
        return VariantChooser({k: v for k, v in weights.items() if k in pages.variants},
                              mode=mode)  # fmt: skip

    epoch = date(1970, 1, 1)
    running = tuple(
        _Running(e, (e.start - epoch).days, (e.end - epoch).days, chooser(e.weights, e.mode))
        for e in config.experiments
    )
    return chooser(config.variants.weights, config.variants.mode), running


def _prefers_json(accept: str | None) -> bool:
    """Whether an `Accept` header names JSON first (`application/json`, or a `+json` type):
    an API client, not a browser (which names HTML first, or `*/*`)."""
    if not accept:
        return False
    first = accept.split(",", 1)[0].split(";", 1)[0].strip().lower()
    return first == "application/json" or (first.startswith("application/") and
                                           first.endswith("+json"))  # fmt: skip


def _warned(rules: RuleSet, texts: list[str]) -> list[str]:
    """The texts of a search that a warn rule decides on its own."""
    return [t for t in texts if (m := rules.match(t)) is not None and m.action is Action.WARN]


def _suggestions(route: CompiledRoute) -> Answer:
    # The query is never echoed, not even as OpenSearch's first element.
    opensearch = route.route.suggest_format == "opensearch"
    body = json.dumps(["", []] if opensearch else []).encode()
    kind = "application/x-suggestions+json" if opensearch else "application/json"
    return Answer(200, (("Content-Type", kind), _NOSNIFF, *_NO_STORE, *_OWN), body)
