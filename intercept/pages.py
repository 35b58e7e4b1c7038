"""Deterrence pages: every page rendered once when messages load, served by dict lookup.

`load_pages()` reads a messages folder (see `messages/README.md`)::

    messages/
      page.html.j2      the one Jinja2 template (autoescaped) for every page
      resources.yaml    help resources: name, address, languages, countries
      en.yaml, fi.yaml  one file per language: page strings, the four message variants, errors

and renders every (language, variant) page, its warn twin and the short error pages once. At
request time nothing is rendered: `Pages.block()` is a dict lookup, `Pages.warn()` joins the
prebuilt pieces around the continue link (the template may place it more than once: at the top
for someone whose search was a false positive, and after the help list), `Pages.error_page()` is
a lookup.

What the pages never do: echo the query or anything else from the request (only the continue
link the server builds), run JavaScript, load anything from elsewhere, or link anywhere but
`/_intercept/go/<link-id>?v=<variant>&l=<lang>` (besides the skip link, the continue link and
`tel:` phone numbers, which a phone dials with no request to any server, so they are not
counted); `Pages.link_target()` maps those ids to the real addresses, and the survey address
only ever gains `lang` and `variant`. Every page is sent with
a strict Content-Security-Policy that allows the page's one `<style>` element by its hash.

Bad input (unknown keys, missing strings, malformed addresses, a page over the size limit)
raises `MessagesError`, a `ValueError` whose `problems` name the file, line and field of every
problem found.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jinja2

from intercept.config import Config, SurveyQuestion
from intercept.errors import Problem
from intercept.messagefile import (
    ErrorText,
    LanguageFileModel,
    MessagesError,
    ResourceModel,
    VariantText,
    read_messages,
)

__all__ = [
    "ANSWER_HREF",
    "ANSWER_MARKER",
    "CONTINUE_MARKER",
    "ERROR_STATUSES",
    "LINK_PREFIX",
    "MAX_PAGE_BYTES",
    "VARIANTS",
    "MessagesError",
    "Page",
    "Pages",
    "load_pages",
    "pages_for",
]

LINK_PREFIX = "/_intercept/go/"
"""Every link on a page goes through this prefix: `/_intercept/go/<link-id>?v=...&l=...`."""

CONTINUE_MARKER = "__INTERCEPT_CONTINUE__"
"""The warn page's continue href as rendered (once or more); `Pages.warn()` puts the real href
in every place it stands."""
ANSWER_MARKER = "__INTERCEPT_ANSWER__"  # the answer form's token, set per response
ANSWER_HREF = "/_intercept/answer"

VARIANTS: tuple[str, ...] = ("harm", "legal", "help", "neutral")
"""The message variants every language file must define, in this order."""

ERROR_STATUSES: Mapping[int, str] = {
    400: "bad_request",
    404: "not_found",
    413: "payload_too_large",
    414: "uri_too_long",
    431: "headers_too_large",
    502: "bad_gateway",
    504: "gateway_timeout",
}
"""Statuses with their own error text; any other status gets the `other` text."""

MAX_PAGE_BYTES = 30_000
"""A rendered page (warn pages before the continue link goes in) must be smaller than this."""

TEMPLATE_FILE = "page.html.j2"
SURVEY_LINK_ID = "survey"
MAX_CONTINUE_HREF = 8192
_MAX_ACCEPT_LANGUAGE = 2048
_MAX_ACCEPT_ITEMS = 32

_STYLE = re.compile(rb"<style>(.*?)</style>", re.DOTALL)
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Page:
    """A complete response body and the headers to send with it (no status, no length)."""

    body: bytes
    headers: tuple[tuple[str, str], ...]


_Pieces = tuple[tuple[bytes, ...], tuple[tuple[str, str], ...]]
"""A warn page cut at each continue marker (two pieces or more), and its headers."""


# ---------------------------------------------------------------------------------------------
# Rendering


@dataclass(frozen=True, slots=True)
class _ShownResource:
    """A resource as the template sees it: texts and precomputed /_intercept/go links."""

    id: str
    name: str
    kind: str
    host: str
    phone: str | None
    tel: str | None  # the phone number as a `tel:` address: dialled, never counted
    lang: str | None  # the name's language where the page's is not one of the resource's
    href: str
    onion_href: str | None
    onion_host: str | None


def _go(link_id: str, variant: str, language: str) -> str:
    return f"{LINK_PREFIX}{link_id}?{urlencode({'v': variant, 'l': language})}"


def _resources_for(
    language: str,
    resources: Sequence[ResourceModel],
    country: str | None,
    default_language: str,
) -> list[ResourceModel]:
    """The resources a page in `language` lists, country matches first.

    A resource is listed when it is offered in the page's language (or in `any`), or when it
    is meant for the operator's `country`. With no match, international resources in the
    default language are listed, and failing those any resource in the default language.
    """
    in_country = [r for r in resources if country is not None and country in r.countries]
    in_language = [r for r in resources if language in r.languages or "any" in r.languages]
    chosen = in_country + [r for r in in_language if r not in in_country]
    if chosen:
        return chosen
    fallback = [r for r in resources if default_language in r.languages]
    international = [r for r in fallback if "any" in r.countries]
    return international or fallback


def _tel(phone: str | None) -> str | None:
    """`phone` as a `tel:` address (RFC 3966): its digits and a leading `+`, nothing else;
    the model allows only digits, spaces and `+()./-` in a phone number."""
    return None if phone is None else "tel:" + re.sub(r"[^0-9+]", "", phone)


def _name_language(resource: ResourceModel, language: str) -> str | None:
    """The language a resource's name is in on a page in `language`, when it differs: its
    first language, for a resource not offered in the page's language (listed for the
    operator's country or as the fallback); None where the page's language fits."""
    if language in resource.languages or "any" in resource.languages:
        return None
    return resource.languages[0]


def _shown(resource: ResourceModel, variant: str, language: str) -> _ShownResource:
    host = urlsplit(resource.url).hostname or ""
    onion_host = urlsplit(resource.onion).hostname if resource.onion else None
    return _ShownResource(
        id=resource.id,
        name=resource.name,
        kind=resource.kind,
        host=host.removeprefix("www."),
        phone=resource.phone,
        tel=_tel(resource.phone),
        lang=_name_language(resource, language),
        href=_go(f"help-{resource.id}", variant, language),
        onion_href=_go(f"help-{resource.id}-onion", variant, language) if resource.onion else None,
        onion_host=onion_host,
    )


_ANSWER_BYTES = ANSWER_MARKER.encode("ascii")
_TOKEN = re.compile(r"[A-Za-z0-9._-]{1,200}")  # what AnswerTokens mints: nothing to escape


def _questions(
    questions: Sequence[SurveyQuestion], language: str, default_language: str
) -> list[dict[str, Any]]:
    """The questions as a page in `language` shows them; a text missing in that language is
    the default language's (then marked with its own `lang`), else the first one written."""

    def text(texts: Mapping[str, str]) -> tuple[str, str | None]:
        for lang in (language, default_language, *texts):
            if lang in texts:
                return texts[lang], None if lang == language else lang
        raise ValueError("a survey text with no language")  # the config refuses it

    shown = []
    for question in questions:
        words, lang = text(question.text)
        options = [dict(zip(("text", "lang"), text(o.text), strict=True), id=o.id)
                   for o in question.options]  # fmt: skip
        shown.append({"id": question.id, "text": words, "lang": lang, "options": options})
    return shown


def _json_headers(language: str) -> tuple[tuple[str, str], ...]:
    """The headers of a JSON answer: the page's policy, for a body that loads nothing."""
    return (
        ("Content-Type", "application/json; charset=utf-8"),
        ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
        ("Referrer-Policy", "no-referrer"),
        ("Cache-Control", "no-store"),
        ("X-Robots-Tag", "noindex"),
        ("X-Content-Type-Options", "nosniff"),
        ("Content-Language", language),
    )


def _json_text(
    words: VariantText, survey_href: str, shown: Sequence[_ShownResource], language: str
) -> dict[str, Any]:
    """What a JSON answer in `language` and one variant says and links to (see
    `Pages.json_answer`)."""
    links: list[dict[str, str | None]] = [{"id": SURVEY_LINK_ID, "kind": "survey",
                                           "href": survey_href}]  # fmt: skip
    for resource in shown:
        links.append({"id": f"help-{resource.id}", "kind": resource.kind, "name": resource.name,
                      "href": resource.href, "onion_href": resource.onion_href,
                      "phone": resource.phone})  # fmt: skip
    return {"language": language, "title": words.title, "message": [words.lead, *words.body],
            "links": links}  # fmt: skip


def _headers(
    body: bytes, language: str, form_action: str = "'none'"
) -> tuple[tuple[str, str], ...]:
    """The security headers for `body`, whose one <style> element the CSP allows by hash;
    only the warn page of a POST search may post its form, to this site."""
    styles = _STYLE.findall(body)
    if len(styles) != 1:
        raise ValueError(f"a page must hold exactly one <style> element (found {len(styles)})")
    digest = base64.b64encode(hashlib.sha256(styles[0]).digest()).decode("ascii")
    csp = (
        f"default-src 'none'; style-src 'sha256-{digest}'; base-uri 'none'; "
        f"form-action {form_action}; frame-ancestors 'none'"
    )
    return (
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Security-Policy", csp),
        ("Referrer-Policy", "no-referrer"),
        ("Cache-Control", "no-store"),
        ("X-Robots-Tag", "noindex"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Content-Language", language),
    )


class _Renderer:
    """Renders the template and checks every page it produces."""

    def __init__(self, template: jinja2.Template, template_name: str) -> None:
        self.template = template
        self.template_name = template_name

    def render(self, what: str, **context: Any) -> bytes:
        try:
            text = self.template.render(**context)
        except jinja2.TemplateError as error:
            line = getattr(error, "lineno", None) or 0
            problem = Problem(self.template_name, line, None, f"{what}: {error}")
            raise MessagesError([problem]) from error
        body = text.lstrip("\n").encode("utf-8")
        problems: list[str] = []
        if len(body) >= MAX_PAGE_BYTES:
            problems.append(f"is {len(body)} bytes; keep pages under {MAX_PAGE_BYTES}")
        if b"<script" in body.lower():
            problems.append("contains a <script> element")
        if problems:
            messages = [Problem(self.template_name, 0, None, f"{what} {p}") for p in problems]
            raise MessagesError(messages)
        return body


# ---------------------------------------------------------------------------------------------
# The pages


class Pages:
    """Every page, prebuilt. Immutable once loaded; safe to share between threads and tasks.

    Build with `load_pages()`. `languages` lists the languages with a messages file (the
    default first), `variants` the message variants, `default_language` the fallback language.
    """

    __slots__ = (
        "_block",
        "_errors",
        "_json",
        "_links",
        "_survey_url",
        "_thanks",
        "_warn",
        "_warn_post",
        "asks",
        "country",
        "default_language",
        "languages",
        "variants",
    )

    def __init__(
        self,
        *,
        languages: tuple[str, ...],
        variants: tuple[str, ...],
        default_language: str,
        country: str | None,
        survey_url: str,
        block: Mapping[tuple[str, str], Page],
        warn: Mapping[tuple[str, str], _Pieces],
        warn_post: Mapping[tuple[str, str], _Pieces],
        errors: Mapping[tuple[str, str], Page],
        links: Mapping[str, str],
        answers: Mapping[tuple[str, str], dict[str, Any]] | None = None,
        thanks: Mapping[tuple[str, str], Page] | None = None,
    ) -> None:
        self.languages = languages
        self.variants = variants
        self.default_language = default_language
        self.country = country
        self._survey_url = survey_url
        self._block = dict(block)
        self._warn = dict(warn)
        self._warn_post = dict(warn_post)
        self._errors = dict(errors)
        self._links = dict(links)
        self._json = dict(answers or {})
        self._thanks = dict(thanks or {})
        self.asks = bool(self._thanks)  # the pages hold an answer form (survey.questions)

    def __repr__(self) -> str:
        return (
            f"<Pages languages={','.join(self.languages)} variants={','.join(self.variants)} "
            f"default={self.default_language} links={len(self._links) + 1}>"
        )

    def language_of(self, language: str) -> str:
        """The language a page asked for in `language` is shown in (the default where there
        is no messages file for it)."""
        return self._language(language)

    def _language(self, language: str) -> str:
        return language if language in self.languages else self.default_language

    def _check_variant(self, variant: str) -> None:
        if variant not in self.variants:
            raise ValueError(f"unknown variant {variant!r} (known: {', '.join(self.variants)})")

    def block(self, language: str, variant: str, answer_token: str | None = None) -> Page:
        """The page shown instead of results. An unknown `language` gets the default one.

        Raises `ValueError` for a variant that is not one of `variants`.
        """
        self._check_variant(variant)
        return self._asking(self._block[self._language(language), variant], answer_token)

    def _asking(self, page: Page, answer_token: str | None) -> Page:
        """`page` with its answer form's token set (pages that ask need one)."""
        if not self.asks:
            return page
        if answer_token is None or not _TOKEN.fullmatch(answer_token):
            raise ValueError("these pages ask questions: an answer token is needed")
        return Page(page.body.replace(_ANSWER_BYTES, answer_token.encode("ascii"), 1), page.headers)

    def thanks(self, language: str, variant: str) -> Page:
        """The page after an answer: thanks, the full survey link and the help resources.
        `KeyError` where the pages ask nothing."""
        self._check_variant(variant)
        return self._thanks[self._language(language), variant]

    def warn(
        self,
        language: str,
        variant: str,
        continue_href: str,
        *,
        post: bool = False,
        answer_token: str | None = None,
    ) -> Page:
        """The warn page: the block page plus a link on to the results at `continue_href`,
        or, with `post`, a button that posts to it (a POST search is never replayed by merely
        following a link, which prefetchers do).

        `continue_href` is built by the server (a path starting with one `/`, or an http(s)
        address); it is HTML-escaped here. Anything else (`javascript:`, `//host`, control
        characters) raises `ValueError`, as does an unknown variant.
        """
        self._check_variant(variant)
        _check_continue_href(continue_href)
        prebuilt = self._warn_post if post else self._warn
        pieces, headers = prebuilt[self._language(language), variant]
        escaped = html.escape(continue_href, quote=True).encode("utf-8")
        return self._asking(Page(escaped.join(pieces), headers), answer_token)

    def json_answer(
        self,
        language: str,
        variant: str,
        action: str,
        continue_href: str | None = None,
        *,
        post: bool = False,
    ) -> Page:
        """The intervention as JSON, for an API client: what the page says and links to,
        `{"intervention": true, "action", "language", "title", "message": [paragraphs],
        "links": [{"id", "kind", "href", ...}], "continue"}`; `continue` (a warn's way on)
        is `{"href", "method"}` or null. Links go through `/_intercept/go/` as on the page;
        nothing of the request is in it. Raises `ValueError` for an unknown variant or a
        `continue_href` the page would refuse."""
        self._check_variant(variant)
        language = self._language(language)
        onward = None
        if continue_href is not None:
            _check_continue_href(continue_href)
            onward = {"href": continue_href, "method": "POST" if post else "GET"}
        answer = {"intervention": True, "action": action, **self._json[language, variant],
                  "continue": onward}  # fmt: skip
        body = json.dumps(answer, ensure_ascii=False).encode("utf-8")
        return Page(body, _json_headers(language))

    def error_page(self, status: int, language: str) -> Page:
        """A short error page for `status` (400, 404, 413, 414, 431, 502, 504; others generic).

        It says what went wrong in general terms only and never echoes the request.
        """
        key = ERROR_STATUSES.get(status, "other")
        return self._errors[key, self._language(language)]

    def link_target(
        self, link_id: str, *, language: str | None = None, variant: str | None = None
    ) -> str | None:
        """The real address for `/_intercept/go/<link_id>`, or None for an unknown id.

        For `survey` it is the configured survey address with `lang` (a known language, else
        the default) and `variant` (only when it is a known variant) set as query parameters;
        the server passes the `l` and `v` it received. Nothing else is ever added.
        """
        if link_id == SURVEY_LINK_ID:
            chosen_variant = variant if variant in self.variants else None
            return _survey_target(self._survey_url, self._language(language or ""), chosen_variant)
        return self._links.get(link_id)

    def choose_language(self, rule_language: str | None, accept_language: str | None) -> str:
        """The page language: the matched rule's language when there are messages in it, else
        the best of the `Accept-Language` header by q-value, else the default.

        Tags match on their primary subtag too (`pt-BR` picks `pt`). A malformed header, or one
        naming no known language, falls through to the default.
        """
        found = self._known(rule_language)
        if found is not None:
            return found  # the header is not even parsed
        for tag in _accepted_tags(accept_language):
            found = self._known(tag)
            if found is not None:
                return found
        return self.default_language

    def _known(self, tag: str | None) -> str | None:
        if tag in self.languages:
            return tag  # already one of ours, as written (the usual case: a rule's language)
        if not tag or not _LANGUAGE_TAG.match(tag):
            return None
        tag = tag.lower()
        if tag in self.languages:
            return tag
        primary = tag.split("-", 1)[0]
        return primary if primary in self.languages else None


def _check_continue_href(href: str) -> None:
    if not isinstance(href, str) or not href:
        raise ValueError("continue_href must be a non-empty string")
    if len(href) > MAX_CONTINUE_HREF or _CONTROL.search(href):
        raise ValueError("continue_href is too long or holds control characters")
    relative = href.startswith("/") and not href.startswith("//") and not href.startswith("/\\")
    absolute = href.lower().startswith(("http://", "https://"))
    if not (relative or absolute):
        raise ValueError("continue_href must be a path starting with '/' or an http(s) address")


def _survey_target(survey_url: str, language: str, variant: str | None) -> str:
    parts = urlsplit(survey_url)
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if key not in ("lang", "variant")
    ]
    query.append(("lang", language))
    if variant is not None:
        query.append(("variant", variant))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _accepted_tags(header: str | None) -> list[str]:
    """The language tags of an `Accept-Language` header, best first (q=0 and junk dropped)."""
    if not header:
        return []
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(header[:_MAX_ACCEPT_LANGUAGE].split(",")[:_MAX_ACCEPT_ITEMS]):
        tag, _, params = item.strip().partition(";")
        tag = tag.strip()
        quality = 1.0
        params = params.strip()
        if params:
            name, _, value = params.partition("=")
            if name.strip().lower() != "q":
                continue
            try:
                quality = float(value.strip())
            except ValueError:
                continue
            if not 0.0 <= quality <= 1.0:
                continue
        if tag and tag != "*" and quality > 0.0:
            ranked.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(ranked)]


def _check_survey_url(survey_url: str) -> str:
    if not isinstance(survey_url, str):
        raise ValueError("survey_url must be a string")
    parts = urlsplit(survey_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or _CONTROL.search(survey_url):
        raise ValueError(f"survey_url must be an http(s) address with a host (got {survey_url!r})")
    return survey_url


def _check_country(country: str | None) -> str | None:
    if country is None:
        return None
    if not isinstance(country, str) or not re.fullmatch(r"[A-Za-z]{2}", country):
        raise ValueError(f"country must be a two-letter ISO 3166-1 code (got {country!r})")
    return country.upper()


def pages_for(config: Config) -> Pages:
    """The pages `config` asks for: its messages folder, survey, country, default language
    and survey questions (what serving and every reload load)."""
    return load_pages(
        config.pages_folder,
        survey_url=config.survey_url,
        country=config.country,
        default_language=config.default_language,
        questions=config.survey.questions,
    )


def load_pages(
    messages_dir: str | Path,
    *,
    survey_url: str,
    country: str | None = None,
    default_language: str = "en",
    questions: Sequence[SurveyQuestion] = (),
) -> Pages:
    """Read, check and render a messages folder into `Pages`.

    `survey_url` is the research survey's address (http or https); links to it only ever gain
    `lang` and `variant`. `country` (ISO 3166-1 alpha-2, e.g. `FI`) adds the help resources
    meant for that country to every page. `default_language` must have a messages file.
    `questions` (`survey.questions`): the answer form the pages show, and the thank-you pages.

    Raises `MessagesError` (a `ValueError`) listing every problem found, with file, line and
    field, and `ValueError` for a bad argument.
    """
    survey_url = _check_survey_url(survey_url)
    country = _check_country(country)
    folder = Path(messages_dir)
    problems: list[Problem] = []
    if not folder.is_dir():
        raise MessagesError([Problem(str(folder), 0, None, "not a folder")])

    files = read_messages(folder)
    problems.extend(files.problems)
    if files.texts and default_language not in files.texts and not problems:
        message = f"no messages for the default language '{default_language}'"
        problems.append(Problem(str(folder), 0, None, message))

    template = _load_template(folder, problems)
    if problems or template is None:
        raise MessagesError(problems)

    return _build(
        files.texts,
        files.resources,
        template,
        survey_url=survey_url,
        country=country,
        default_language=default_language,
        questions=questions,
    )


def _load_template(folder: Path, problems: list[Problem]) -> _Renderer | None:
    name = str(folder / TEMPLATE_FILE)
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    try:
        template = environment.get_template(TEMPLATE_FILE)
    except jinja2.TemplateNotFound:
        problems.append(Problem(name, 0, None, "template not found"))
        return None
    except jinja2.TemplateSyntaxError as error:
        problems.append(Problem(name, error.lineno or 0, None, f"template error: {error.message}"))
        return None
    return _Renderer(template, name)


def _build(
    texts: Mapping[str, LanguageFileModel],
    resources: Sequence[ResourceModel],
    renderer: _Renderer,
    *,
    survey_url: str,
    country: str | None,
    default_language: str,
    questions: Sequence[SurveyQuestion] = (),
) -> Pages:
    languages = (default_language, *sorted(lang for lang in texts if lang != default_language))
    thanks: dict[tuple[str, str], Page] = {}
    asking = "'self'" if questions else "'none'"  # the answer form posts to this site
    if questions:
        lacking = [f"{language}.yaml" for language in languages
                   if None in (texts[language].page.survey.send,
                               texts[language].page.survey.thanks_title,
                               texts[language].page.survey.thanks)]  # fmt: skip
        if lacking:
            message = ("survey.questions are configured: page.survey needs send, thanks_title "
                       "and thanks")  # fmt: skip
            raise MessagesError([Problem(file, 0, None, message) for file in lacking])
    block: dict[tuple[str, str], Page] = {}
    warn: dict[tuple[str, str], _Pieces] = {}
    warn_post: dict[tuple[str, str], _Pieces] = {}
    errors: dict[tuple[str, str], Page] = {}
    answers: dict[tuple[str, str], dict[str, Any]] = {}
    marker = CONTINUE_MARKER.encode("ascii")

    for language in languages:
        text = texts[language]
        listed = _resources_for(language, resources, country, default_language)
        if not listed:
            file = f"{language}.yaml"
            raise MessagesError([Problem(file, 0, None, "no help resource to list on this page")])
        common = {"lang": language, "direction": text.meta.direction, "t": text.page}
        for variant in VARIANTS:
            words: VariantText = getattr(text.variants, variant)
            survey_href = _go(SURVEY_LINK_ID, variant, language)
            shown = [_shown(r, variant, language) for r in listed]
            context = {
                **common,
                "kind": "block",
                "title": words.title,
                "notice": text.page.notice.block,
                "v": words,
                "survey_href": survey_href,
                "resources": shown,
                "continue_href": None,
                "questions": _questions(questions, language, default_language),
                "answer_href": ANSWER_HREF,
                "answer_token": ANSWER_MARKER,
            }
            body = renderer.render(f"{language}/{variant} page", **context)
            if marker in body or (_ANSWER_BYTES in body) != bool(questions):
                raise MessagesError([Problem(
                    f"{language}.yaml", 0, None,
                    f"the page must hold {ANSWER_MARKER} once with survey questions, never "
                    f"without, and never {CONTINUE_MARKER}",
                )])  # fmt: skip
            block[language, variant] = Page(body, _headers(body, language, asking))
            if questions:
                thanks_title = text.page.survey.thanks_title or ""
                thanked = renderer.render(
                    f"{language}/{variant} thank-you page",
                    **{**context, "kind": "thanks", "title": thanks_title, "questions": []},
                )
                thanks[language, variant] = Page(thanked, _headers(thanked, language))
            answers[language, variant] = _json_text(words, survey_href, shown, language)

            context.update(kind="warn", notice=text.page.notice.warn, continue_href=CONTINUE_MARKER)
            for post, prebuilt in ((False, warn), (True, warn_post)):
                context["continue_post"] = post
                warn_body = renderer.render(f"{language}/{variant} warn page", **context)
                pieces = tuple(warn_body.split(marker))
                if len(pieces) < 2:
                    problem = Problem(
                        renderer.template_name, 0, None, "warn page needs a continue link"
                    )
                    raise MessagesError([problem])
                form_action = "'self'" if post else asking
                prebuilt[language, variant] = (pieces, _headers(warn_body, language, form_action))

        for key in (*ERROR_STATUSES.values(), "other"):
            words_error: ErrorText = getattr(text.errors, key)
            body = renderer.render(
                f"{language}/{key} error page",
                **common,
                kind="error",
                title=words_error.title,
                notice=text.page.notice.error,
                error_text=words_error.text,
            )
            errors[key, language] = Page(body, _headers(body, language))

    links: dict[str, str] = {}
    for resource in resources:
        links[f"help-{resource.id}"] = resource.url
        if resource.onion:
            links[f"help-{resource.id}-onion"] = resource.onion

    return Pages(
        languages=languages,
        variants=VARIANTS,
        default_language=default_language,
        country=country,
        survey_url=survey_url,
        block=block,
        warn=warn,
        warn_post=warn_post,
        errors=errors,
        links=links,
        answers=answers,
        thanks=thanks,
    )
