"""Deterrence pages: every language and variant renders safe, small, accessible HTML."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from intercept.pages import (
    CONTINUE_MARKER,
    LINK_PREFIX,
    MAX_PAGE_BYTES,
    VARIANTS,
    MessagesError,
    Page,
    Pages,
    load_pages,
)
from intercept.rules.ruleyaml import parse_yaml

MESSAGES = Path(__file__).resolve().parent.parent / "messages"
SURVEY = "https://survey.example/s/abc"
LANGUAGES = sorted(p.stem for p in MESSAGES.glob("*.yaml") if p.name != "resources.yaml")
ERROR_STATUSES = (400, 404, 413, 414, 431, 502, 504)


def _direction(language: str) -> str:
    meta = parse_yaml((MESSAGES / f"{language}.yaml").read_text("utf-8"), file=language).data
    assert isinstance(meta, dict)
    return str(meta["meta"].get("direction", "ltr"))


DIRECTIONS = {language: _direction(language) for language in LANGUAGES}


class Document(HTMLParser):
    """The parts of a page the tests look at."""

    def __init__(self, body: bytes) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []
        self.texts: dict[str, list[str]] = {}
        self._open: list[str] = []
        self.raw = body.decode("utf-8")
        self.feed(self.raw)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        while self._open and self._open.pop() != tag:
            pass

    def handle_data(self, data: str) -> None:
        if self._open:
            self.texts.setdefault(self._open[-1], []).append(data)
            if self._open[-1] == "style":
                self.styles.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    def links(self) -> list[str]:
        return [attrs.get("href") or "" for attrs in self.all("a")]


@pytest.fixture(scope="module")
def pages() -> Pages:
    return load_pages(MESSAGES, survey_url=SURVEY)


def every_page(pages: Pages) -> list[tuple[str, str, Page]]:
    """(language, what, page) for every prebuilt page."""
    found: list[tuple[str, str, Page]] = []
    for language in pages.languages:
        for variant in pages.variants:
            found.append((language, f"block/{variant}", pages.block(language, variant)))
            found.append((language, f"warn/{variant}", pages.warn(language, variant, "/r?x=1")))
        for status in (*ERROR_STATUSES, 500):
            found.append((language, f"error/{status}", pages.error_page(status, language)))
    return found


def test_every_language_file_is_loaded(pages: Pages) -> None:
    assert set(pages.languages) == set(LANGUAGES)
    assert set(LANGUAGES) >= {"en", "es", "de", "fr", "pt", "ru", "fi", "pl", "it"}
    assert pages.languages[0] == pages.default_language == "en"
    assert pages.variants == VARIANTS == ("harm", "legal", "help", "neutral")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_language_and_variant_renders(pages: Pages, language: str, variant: str) -> None:
    for page in (pages.block(language, variant), pages.warn(language, variant, "/results")):
        assert len(page.body) < MAX_PAGE_BYTES <= 30 * 1024
        assert page.body.startswith(b"<!DOCTYPE html>\n<html")
        doc = Document(page.body)
        assert doc.all("html") == [{"lang": language, "dir": DIRECTIONS[language]}]
        assert len(doc.all("h1")) == 1
        assert len(doc.all("h2")) >= 2
        assert len(doc.all("title")) == 1
        assert {"charset": "utf-8"} in doc.all("meta")
        assert {"name": "robots", "content": "noindex"} in doc.all("meta")
        assert {"name": "viewport", "content": "width=device-width, initial-scale=1"} in doc.all(
            "meta"
        )
        for landmark in ("header", "main", "aside", "footer"):
            assert len(doc.all(landmark)) == 1, landmark
        assert doc.all("main") == [{"id": "main", "tabindex": "-1"}]
        assert doc.all("a")[0] == {"class": "skip", "href": "#main"}
        assert len(doc.all("li")) >= 1  # at least one help resource


def test_page_text_comes_from_the_variant(pages: Pages) -> None:
    titles = {
        variant: Document(pages.block("en", variant).body).texts["h1"] for variant in VARIANTS
    }
    assert titles["harm"] == ["Real children are harmed"]
    assert titles["legal"] == ["This is illegal"]
    assert len({tuple(t) for t in titles.values()}) == len(VARIANTS)
    body = pages.block("en", "help").body.decode()
    assert "Answer an anonymous survey" in body
    assert "Your search is not stored; only anonymous totals are counted." in body


def test_pages_are_prebuilt(pages: Pages) -> None:
    assert pages.block("fi", "harm") is pages.block("fi", "harm")
    assert pages.error_page(502, "de") is pages.error_page(502, "de")


def test_csp_allows_exactly_the_style_element(pages: Pages) -> None:
    for language, what, page in every_page(pages):
        doc = Document(page.body)
        assert len(doc.styles) == 1, (language, what)
        digest = base64.b64encode(hashlib.sha256(doc.styles[0].encode()).digest()).decode()
        csp = dict(page.headers)["Content-Security-Policy"]
        assert csp == (
            f"default-src 'none'; style-src 'sha256-{digest}'; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'"
        ), (language, what)


def test_headers(pages: Pages) -> None:
    for language, what, page in every_page(pages):
        headers = dict(page.headers)
        assert len(headers) == len(page.headers), what
        assert headers.pop("Content-Security-Policy")  # its value: test_csp_allows_exactly_...
        assert headers == {
            "Content-Type": "text/html; charset=utf-8",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
            "X-Robots-Tag": "noindex",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Content-Language": language,
        }, (language, what)


def test_no_script_no_inline_styles_no_handlers_no_external_resources(pages: Pages) -> None:
    for language, what, page in every_page(pages):
        assert b"<script" not in page.body.lower(), (language, what)
        doc = Document(page.body)
        for tag, attrs in doc.tags:
            assert tag not in {"script", "img", "iframe", "object", "embed", "link", "form"}
            assert "style" not in attrs, (language, what, tag)
            assert "src" not in attrs, (language, what, tag)
            assert not [name for name in attrs if name.startswith("on")], (language, what, tag)
            for value in attrs.values():
                assert not re.search(r"(?i)\b(?:https?|javascript|data):", value or "")
        assert "@import" not in doc.styles[0]
        assert "url(" not in doc.styles[0]


def test_every_link_goes_through_the_prefix(pages: Pages) -> None:
    """Every link is counted through /_intercept/go/ but the skip link, the continue link (at
    the top and after the help list) and phone numbers, which are `tel:` links."""
    phones = {"tel:" + re.sub(r"[^0-9+]", "", phone) for phone in _resource_phones()}
    for language in pages.languages:
        for variant in pages.variants:
            page = pages.warn(language, variant, "/search?page=2")
            doc = Document(page.body)
            hrefs = doc.links()
            assert hrefs.count("#main") == 1
            assert hrefs.count("/search?page=2") == 2
            dialled = [h for h in hrefs if h.startswith("tel:")]
            assert set(dialled) <= phones
            assert all(re.fullmatch(r"tel:\+?[0-9]{5,}", h) for h in dialled)
            routed = [h for h in hrefs if h not in ("#main", "/search?page=2", *dialled)]
            assert routed
            assert all(h.startswith(LINK_PREFIX) for h in routed)
            for href in routed:
                query = parse_qs(urlsplit(href).query, strict_parsing=True)
                assert query == {"v": [variant], "l": [language]}, href
            for attrs in doc.all("a"):
                if attrs.get("href") != "#main":
                    assert attrs.get("rel") == "noreferrer", attrs
            ids = [urlsplit(h).path.removeprefix(LINK_PREFIX) for h in routed]
            assert ids[0] == "survey"
            assert all(i.startswith("help-") for i in ids[1:])


def test_link_targets_resolve(pages: Pages) -> None:
    for language in pages.languages:
        for variant in pages.variants:
            for href in Document(pages.block(language, variant).body).links():
                if href == "#main" or href.startswith("tel:"):
                    continue
                link_id = urlsplit(href).path.removeprefix(LINK_PREFIX)
                target = pages.link_target(link_id, language=language, variant=variant)
                assert target is not None, link_id
                scheme = urlsplit(target).scheme
                if link_id.endswith("-onion"):
                    assert urlsplit(target).hostname.endswith(".onion")  # type: ignore[union-attr]
                else:
                    assert scheme == "https", target


@pytest.mark.parametrize("link_id", ["", "nope", "help-", "help-nope", "survey/x", "Survey"])
def test_unknown_link_ids_have_no_target(pages: Pages, link_id: str) -> None:
    assert pages.link_target(link_id) is None


def test_survey_url_carries_only_language_and_variant(pages: Pages) -> None:
    target = pages.link_target("survey", language="fi", variant="legal")
    assert target == f"{SURVEY}?lang=fi&variant=legal"
    parts = urlsplit(target)
    assert parse_qs(parts.query) == {"lang": ["fi"], "variant": ["legal"]}
    assert pages.link_target("survey") == f"{SURVEY}?lang=en"
    assert pages.link_target("survey", language="xx", variant="evil") == f"{SURVEY}?lang=en"
    assert pages.link_target("survey", language="q=secret", variant="<x>") == f"{SURVEY}?lang=en"


def test_survey_url_keeps_the_operators_own_parameters() -> None:
    pages = load_pages(MESSAGES, survey_url="https://s.example/f?id=7&lang=zz#top")
    assert pages.link_target("survey", language="de", variant="harm") == (
        "https://s.example/f?id=7&lang=de&variant=harm#top"
    )


@pytest.mark.parametrize(
    ("rule_language", "accept_language", "expected"),
    [
        ("fi", "en-US,en;q=0.9", "fi"),  # the rule's language wins
        ("pt-BR", None, "pt"),  # primary subtag
        ("EN-gb", None, "en"),
        (None, "pt-BR,pt;q=0.9,en;q=0.5", "pt"),
        (None, "de;q=0.5, fr;q=0.8", "fr"),  # q-values order
        (None, "fr;q=0, de", "de"),  # q=0 means not acceptable
        (None, "ru;q=1.5, pl", "pl"),  # an invalid q is ignored
        (None, "x;;q=abc, it", "it"),  # junk is skipped
        (None, "zz-ZZ, yy", "en"),  # nothing known: default
        (None, "*", "en"),
        (None, "", "en"),
        (None, None, "en"),
        ("xx", "es-MX", "es"),  # unknown rule language falls through
        ("kl", "kl-GL, gd", "en"),  # languages with no messages file
        ("../etc", "es", "es"),
        (None, "en-US,en;q=0.9," * 500 + "fi", "en"),
    ],
)
def test_choose_language(
    pages: Pages, rule_language: str | None, accept_language: str | None, expected: str
) -> None:
    assert pages.choose_language(rule_language, accept_language) == expected


def test_accept_language_ties_keep_header_order(pages: Pages) -> None:
    assert pages.choose_language(None, "it;q=0.7, de;q=0.7, es;q=0.7") == "it"
    assert pages.choose_language(None, "kl, gd;q=0.9, ru;q=0.8") == "ru"


def test_warn_page_escapes_the_continue_href(pages: Pages) -> None:
    href = '/search?q=a&b="x"<y>'
    page = pages.warn("en", "harm", href)
    assert page.body.count(b"/search?q=a&amp;b=&quot;x&quot;&lt;y&gt;") == 2
    assert CONTINUE_MARKER.encode() not in page.body
    assert Document(page.body).links().count(href) == 2
    assert page.headers == pages.block("en", "harm").headers
    assert "Continue to results" in page.body.decode()
    absolute = pages.warn("en", "legal", "https://search.example/?page=2").body
    assert b'href="https://search.example/?page=2"' in absolute


@pytest.mark.parametrize(
    "href",
    [
        "",
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,x",
        "//evil.example/",
        "/\\evil.example",
        "search",
        "/a\nb",
        "/a\x00",
        "/" + "a" * 9000,
    ],
)
def test_warn_page_refuses_unsafe_hrefs(pages: Pages, href: str) -> None:
    with pytest.raises(ValueError, match="continue_href"):
        pages.warn("en", "harm", href)


def test_block_page_has_no_continue_link(pages: Pages) -> None:
    for language in pages.languages:
        for variant in pages.variants:
            page = pages.block(language, variant)
            assert CONTINUE_MARKER.encode() not in page.body
            assert Document(page.body).all("nav") == []


def test_continue_is_at_the_top_of_a_warn_page(pages: Pages) -> None:
    """Someone whose search was a false positive finds "continue" without scrolling past every
    resource: the same way on stands in the header, before the message, and after the help."""
    for language in pages.languages:
        for variant in pages.variants:
            text = pages.warn(language, variant, "/r?p=2").body.decode()
            top, header_end = text.index('<a href="/r?p=2"'), text.index("</header>")
            assert top < header_end < text.index("<h1>") < text.index("<aside")
            assert text.count('href="/r?p=2"') == 2
            posted = pages.warn(language, variant, "/r?p=2", post=True).body.decode()
            forms = re.findall(r'<form class="onward" method="post" action="/r\?p=2">', posted)
            assert len(forms) == 1
            assert posted.index(forms[0]) < posted.index("</header>")
            assert posted.count('method="post" action="/r?p=2"') == 2


def _resource_phones() -> list[str]:
    resources = _yaml("resources.yaml")["resources"]
    assert isinstance(resources, list)
    return [str(r["phone"]) for r in resources if r.get("phone")]


def test_phone_numbers_are_tel_links(pages: Pages) -> None:
    """A phone number is a `tel:` link (digits and a leading +), shown as written."""
    body = pages.block("en", "help").body.decode()
    assert '<a href="tel:08081000900" dir="ltr" rel="noreferrer">0808 1000 900</a>' in body
    assert '<a href="tel:18887738368" dir="ltr" rel="noreferrer">1-888-773-8368</a>' in body
    german = load_pages(MESSAGES, survey_url=SURVEY, country="DE").block("de", "harm").body
    assert (
        b'<a href="tel:+4930450529529" dir="ltr" rel="noreferrer">+49 30 450 529 529</a>' in german
    )
    for phone in _resource_phones():
        assert re.fullmatch(r"\+?[0-9][0-9 ()./-]+[0-9]", phone)


def test_resource_names_in_another_language_carry_lang(pages: Pages) -> None:
    """A help resource not offered in the page's language names itself in its own first
    language, so screen readers pronounce it right; one offered in the page's does not."""
    italian = Document(pages.block("it", "harm").body)
    named = {(a.get("href") or "").split("?")[0]: a.get("lang") for a in italian.all("a")}
    assert named["/_intercept/go/help-redirection"] == "en"  # en, es, pl, fi: not it
    assert named["/_intercept/go/help-troubled-desire"] == "en"
    assert {"class": "sr", "lang": "en"} in italian.all("span")  # the onion link's name
    finnish = Document(pages.block("fi", "harm").body)
    assert all(a.get("lang") is None for a in finnish.all("a")
               if "help-redirection" in (a.get("href") or ""))  # fmt: skip
    assert all("lang" not in a for a in Document(pages.block("en", "legal").body).all("a"))


# Ordinary words, per language, that name the material (children, sexual) and consequences
# (family, work); the pages' own texts already use them. Every language of the pages.
CHILD = {"en": r"child", "de": r"kind", "es": r"niñ|menor", "fr": r"enfant",
         "it": r"bambin|minor", "pl": r"dzie[cc]", "pt": r"crianç", "ru": r"дет",
         "fi": r"lapsi|lasten|lapsia", "nl": r"kind", "sv": r"barn", "cs": r"dět|dítě",
         "uk": r"діт|дит", "tr": r"çocuk", "id": r"anak", "zh": r"儿童",
         "ar": r"أطفال|الطفل|طفل"}  # fmt: skip
SEXUAL = (r"sexu|sessu|seksu|сексу|abus|missbrauch|wykorzyst|насили|hyväksikäy|misbruik|"
          r"övergrepp|zneuž|cinsel|istismar|pelecehan|性虐待|性图像|جنسي|اعتداء")  # fmt: skip
FAMILY = {"en": "family", "de": "familie", "es": "familia", "fr": "famille", "it": "famiglia",
          "pl": "rodzin", "pt": "família", "ru": "семь", "fi": "perhe", "nl": "gezin",
          "sv": "familj", "cs": "rodin", "uk": "сім", "tr": "aile", "id": "keluarga",
          "zh": "家庭", "ar": "عائل"}  # fmt: skip
WORK = {"en": "job", "de": "arbeit", "es": "trabajo", "fr": "travail", "it": "lavoro",
        "pl": "prac", "pt": "emprego", "ru": "работ", "fi": "työ", "nl": "baan", "sv": "arbete",
        "cs": "prác", "uk": "робот", "tr": "işin|işler", "id": "pekerjaan", "zh": "工作",
        "ar": "عمل|أعمال"}  # fmt: skip
CRIME = {"en": "crime", "de": "straftat", "es": "delito", "fr": "infraction", "it": "reato",
         "pl": "przestęp", "pt": "crime", "ru": "преступлен", "fi": "rikos", "nl": "misdrijf",
         "sv": "brott", "cs": "trestn", "uk": "злочин", "tr": "suç", "id": "kejahatan",
         "zh": "犯罪", "ar": "جريمة"}  # fmt: skip


def _said(body: bytes, *parts: str) -> str:
    """The visible text of `parts` of a page (tag names), lower-cased."""
    doc = Document(body)
    return " ".join(" ".join(doc.texts.get(part, [])) for part in parts).lower()


@pytest.mark.parametrize("language", sorted(CHILD))
def test_the_neutral_variant_never_names_the_material(pages: Pages, language: str) -> None:
    """The control says only that results are not shown: title, lead, body, the warn page's
    explanation and the footer shared by every variant name neither children nor abuse."""
    for page in (pages.block(language, "neutral"), pages.warn(language, "neutral", "/r")):
        said = _said(page.body, "title", "h1", "p")  # every paragraph: lead, body, footer, nav
        said = said.replace(_said(page.body, "aside"), "")
        assert not re.search(CHILD[language], said), said
        assert not re.search(SEXUAL, said), said


@pytest.mark.parametrize("language", sorted(CHILD))
@pytest.mark.parametrize("variant", ["harm", "legal", "help"])
def test_other_variants_pair_their_framing_with_crime_consequences_and_help(
    pages: Pages, language: str, variant: str
) -> None:
    """Each variant but the control says it is a crime, names what it costs (family, work),
    and points to the help below, besides its own framing."""
    said = _said(pages.block(language, variant).body, "h1", "p")
    for expected in (CHILD[language], CRIME[language], FAMILY[language], WORK[language]):
        assert re.search(expected, said), (expected, said)


def test_unknown_language_gets_the_default_and_unknown_variant_raises(pages: Pages) -> None:
    assert pages.block("xx", "harm") is pages.block("en", "harm")
    assert pages.error_page(502, "xx") is pages.error_page(502, "en")
    with pytest.raises(ValueError, match="unknown variant"):
        pages.block("en", "scary")
    with pytest.raises(ValueError, match="unknown variant"):
        pages.warn("en", "scary", "/")


@pytest.mark.parametrize("language", LANGUAGES)
def test_error_pages(pages: Pages, language: str) -> None:
    titles = set()
    for status in ERROR_STATUSES:
        page = pages.error_page(status, language)
        doc = Document(page.body)
        assert len(page.body) < MAX_PAGE_BYTES
        assert len(doc.all("h1")) == 1
        assert doc.all("html") == [{"lang": language, "dir": DIRECTIONS[language]}]
        assert doc.links() == ["#main"]  # no survey, no help, no echo of anything
        assert doc.all("aside") == []
        assert doc.all("nav") == []
        titles.add(tuple(doc.texts["h1"]))
    assert len(titles) == len(ERROR_STATUSES)
    assert pages.error_page(418, language) is pages.error_page(500, language)
    assert pages.error_page(500, language) not in {
        pages.error_page(status, language) for status in ERROR_STATUSES
    }


def test_english_error_text(pages: Pages) -> None:
    body = pages.error_page(502, "en").body.decode()
    assert "<h1>Search unavailable</h1>" in body
    assert "could not be reached" in body


# --- colours ------------------------------------------------------------------------------


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(first: str, second: str) -> float:
    """The WCAG 2 contrast ratio of two #rrggbb colours."""
    high, low = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _properties(block: str) -> dict[str, str]:
    found = dict(re.findall(r"--([a-z-]+):(#[0-9a-f]{6})\b", block))
    assert found, block
    return found


def colour_schemes(style: str) -> dict[str, dict[str, str]]:
    """The custom properties of the light scheme and of the dark one (light values overridden)."""
    light = re.search(r"^:root\{([^}]*)\}", style, re.MULTILINE)
    dark = re.search(r"@media \(prefers-color-scheme:dark\)\{:root\{([^}]*)\}\}", style)
    assert light
    assert dark
    rest = style.replace(light.group(0), "").replace(dark.group(0), "")
    assert not re.search(r"#[0-9a-fA-F]{3,8}\b|rgb|hsl", rest), "colours belong in :root"
    light_values = _properties(light.group(1))
    return {"light": light_values, "dark": {**light_values, **_properties(dark.group(1))}}


def test_contrast_meets_wcag_aa_in_light_and_dark(pages: Pages) -> None:
    style = Document(pages.block("en", "harm").body).styles[0]
    schemes = colour_schemes(style)
    assert set(schemes["light"]) == set(schemes["dark"])
    text_pairs = [
        ("fg", "bg"),
        ("muted", "bg"),
        ("link", "bg"),
        ("fg", "panel"),
        ("muted", "panel"),
        ("link", "panel"),
        ("accent-fg", "accent-bg"),
    ]
    for name, colours in schemes.items():
        for text, background in text_pairs:
            ratio = contrast(colours[text], colours[background])
            assert ratio >= 4.5, (name, text, background, round(ratio, 2))
        for background in ("bg", "panel"):
            ratio = contrast(colours["focus"], colours[background])
            assert ratio >= 3, (name, "focus", background, round(ratio, 2))
        assert contrast(colours["accent-bg"], colours["bg"]) >= 3  # the button stands out


def test_contrast_helper() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


def test_layout_is_fluid_readable_and_keyboard_friendly(pages: Pages) -> None:
    style = Document(pages.block("en", "harm").body).styles[0]
    # tests/test_page_browser.py measures what these do in Chromium
    assert "@media (forced-colors:active){.button{border:2px solid ButtonText}" in style
    assert "a,button,input{scroll-margin:1rem}" in style  # the focus ring is scrolled in too
    assert re.search(r"\nli\{[^}]*overflow-wrap:anywhere", style)  # long names and onions
    assert "left:-100vw" not in style  # overflow on the left scrolls in right-to-left pages
    assert "max-width:40rem" in style
    assert re.search(r"body\{[^}]*font:1\.\d+rem/", style)
    assert "a:focus-visible{outline:3px solid var(--focus)" in style
    assert "min-height:2.75rem" in style  # 44px tap targets
    assert not re.search(r"\b\d{3,}px\b", style)  # no fixed widths


# --- data files -----------------------------------------------------------------------------


def _yaml(name: str) -> dict[str, object]:
    data = parse_yaml((MESSAGES / name).read_text("utf-8"), file=name).data
    assert isinstance(data, dict)
    return data


def test_only_english_is_marked_reviewed() -> None:
    for language in LANGUAGES:
        meta = _yaml(f"{language}.yaml")["meta"]
        assert isinstance(meta, dict)
        if language == "en":
            assert meta["native_review"] is True
        else:
            assert meta["native_review"] is False
            assert "not yet checked by a native speaker" in str(meta["note"])


def test_resources_say_whether_they_were_verified() -> None:
    text = (MESSAGES / "resources.yaml").read_text("utf-8")
    assert "VERIFY EVERY ADDRESS BEFORE SHIPPING" in text
    resources = _yaml("resources.yaml")["resources"]
    assert isinstance(resources, list)
    ids = [r["id"] for r in resources]
    assert {"redirection", "stopitnow-uk", "troubled-desire", "prevent-it"} <= set(ids)
    for resource in resources:
        assert isinstance(resource["verified"], bool)
        if resource["verified"]:
            assert resource["verified_note"]


def test_country_adds_that_countrys_resources() -> None:
    plain = load_pages(MESSAGES, survey_url=SURVEY)
    german = load_pages(MESSAGES, survey_url=SURVEY, country="de")
    assert german.country == "DE"
    assert b"help-kein-taeter-werden" not in plain.block("en", "help").body
    links = Document(german.block("en", "help").body).links()
    assert links[2].startswith(f"{LINK_PREFIX}help-kein-taeter-werden?")  # country first


# --- bad input ------------------------------------------------------------------------------


@pytest.fixture
def messages_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "messages"
    shutil.copytree(MESSAGES, folder)
    return folder


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text("utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), "utf-8")


def _refused(folder: Path, default_language: str = "en") -> str:
    with pytest.raises(MessagesError) as caught:
        load_pages(folder, survey_url=SURVEY, default_language=default_language)
    assert isinstance(caught.value, ValueError)
    return str(caught.value)


EDITS = {
    # case: (file, text, replaced by, what the refusal says)
    "duplicate key": (
        "en.yaml", "  skip_link:", "  skip_link: Skip\n  skip_link:", ["en.yaml", "duplicate key"]
    ),
    "wrong language in the file": (
        "pl.yaml", "language: pl", "language: cs", ["pl.yaml", "meta.language"]
    ),
    "onion address with a typo": (
        "resources.yaml", "onion: https://6wvybf7", "onion: https://6wvybf6",
        ["resources[0].onion", "checksum"],
    ),
    "duplicate resource id": (
        "resources.yaml", "id: stopitnow-us", "id: stopitnow-uk", ["'stopitnow-uk' is used twice"]
    ),
    "verified resource without a note": (
        "resources.yaml", "    verified: false", "    verified: true", ["verified_note"]
    ),
    "template with a script": (
        "page.html.j2", "</body>", "<script>x()</script></body>", ["<script>"]
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(EDITS))
def test_an_edited_file_is_refused_saying_what_is_wrong(case: str, messages_copy: Path) -> None:
    file, text, replacement, said = EDITS[case]
    _edit(messages_copy / file, text, replacement)
    message = _refused(messages_copy)
    for part in said:
        assert part in message, part


def test_the_continue_link_may_stand_once_but_must_stand(messages_copy: Path) -> None:
    """`Pages.warn()` fills the continue href in wherever the template puts the marker: once is
    enough (a template of an operator's own), none is refused."""
    template = messages_copy / "page.html.j2"
    shipped = template.read_text("utf-8")
    start = shipped.index('{% if kind == "warn" %}')
    end = shipped.index("</header>")
    template.write_text(shipped[:start] + shipped[end:], "utf-8")  # no link at the top
    once = load_pages(messages_copy, survey_url=SURVEY).warn("en", "help", "/r?p=3")
    assert Document(once.body).links().count("/r?p=3") == 1
    template.write_text(shipped.replace("{{ continue_href }}", "/nowhere"), "utf-8")
    assert "warn page needs a continue link" in _refused(messages_copy)


def test_invalid_yaml_names_file_and_line(messages_copy: Path) -> None:
    _edit(messages_copy / "fr.yaml", "  skip_link:", "  skip_link: [unclosed\n  other:")
    message = _refused(messages_copy)
    assert re.search(r"fr\.yaml:\d+: invalid YAML", message), message


def test_unknown_field_names_file_and_field(messages_copy: Path) -> None:
    _edit(messages_copy / "de.yaml", "  harm:\n", "  harm:\n    colour: red\n")
    message = _refused(messages_copy)
    assert re.search(r"de\.yaml:\d+: unknown field 'variants\.harm\.colour'", message), message


def test_missing_field_names_file_and_field(messages_copy: Path) -> None:
    text = (messages_copy / "it.yaml").read_text("utf-8")
    (messages_copy / "it.yaml").write_text(re.sub(r"\n  footer:[^\n]*(\n    [^\n]*)*", "", text))
    message = _refused(messages_copy)
    assert "it.yaml" in message
    assert "missing required field 'page.footer'" in message


def test_unreviewed_file_needs_a_note(messages_copy: Path) -> None:
    text = (messages_copy / "ru.yaml").read_text("utf-8")
    text = re.sub(r"\n  note: >-\n(    [^\n]*\n)+", "\n", text)
    (messages_copy / "ru.yaml").write_text(text, "utf-8")
    message = _refused(messages_copy)
    assert "ru.yaml" in message
    assert "'meta'" in message
    assert "add a 'note'" in message


def test_bad_resource_url_names_the_field(messages_copy: Path) -> None:
    _edit(
        messages_copy / "resources.yaml",
        "url: https://www.redirectionprogram.com/",
        "url: http://www.redirectionprogram.com/",
    )
    message = _refused(messages_copy)
    assert re.search(r"resources\.yaml:\d+: field 'resources\[0\]\.url': must be an https", message)


def test_missing_template_is_refused(messages_copy: Path) -> None:
    (messages_copy / "page.html.j2").unlink()
    assert "page.html.j2" in _refused(messages_copy)


def test_missing_default_language_is_refused(messages_copy: Path) -> None:
    assert "default language 'kl'" in _refused(messages_copy, default_language="kl")


def test_page_without_any_resource_falls_back_to_english(messages_copy: Path) -> None:
    resources = messages_copy / "resources.yaml"
    text = resources.read_text("utf-8")
    start = text.index("  - id: troubled-desire")
    end = text.index("  - id: kein-taeter-werden")
    resources.write_text("resources:\n" + text[start:end], "utf-8")
    _edit(resources, "languages: [en, de, es, pt, fr, tr, hi, mr]", "languages: [en]")
    pages = load_pages(messages_copy, survey_url=SURVEY)
    assert b"help-troubled-desire" in pages.block("fi", "harm").body


@pytest.mark.parametrize("survey_url", ["", "ftp://x.example/", "survey.example", "https://"])
def test_bad_survey_url_is_refused(survey_url: str) -> None:
    with pytest.raises(ValueError, match="survey_url"):
        load_pages(MESSAGES, survey_url=survey_url)


@pytest.mark.parametrize("country", ["Finland", "F", "1A", ""])
def test_bad_country_is_refused(country: str) -> None:
    with pytest.raises(ValueError, match="country"):
        load_pages(MESSAGES, survey_url=SURVEY, country=country)


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MessagesError, match="not a folder"):
        load_pages(tmp_path / "nowhere", survey_url=SURVEY)
