"""Help resources (`messages/resources.yaml`): addresses that can work, a recorded source for
each, and help for young people on the pages of the languages it serves.

The onion checksum is computed here from the Tor rend-spec v3 (not through the loader's own
check), so a bug in one is caught by the other.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from markupsafe import escape

from intercept.messagefile import ResourceModel, read_messages
from intercept.pages import LINK_PREFIX, VARIANTS, Pages, load_pages

MESSAGES = Path(__file__).resolve().parent.parent / "messages"
SURVEY = "https://survey.example/s/abc"
# Help for young people worried about their own sexual thoughts, by resource id.
YOUNG_PEOPLE = ("du-traeumst-von-ihnen",)
# Shore (the Lucy Faithfull Foundation's service for 13 to 18 year olds in the UK) is known to
# exist, but no public source seen here gave its address: it is left out until one does, so
# that no page links to an address nobody checked.
# The ReDirection onion Ahmia's help page no longer links (issue 18, item 7).
RETIRED_ONIONS = ("redirhr3cvqeq2xglvjfd2uiilycwn7nmu3rtnuwv7zthzxjrj7wf3yd.onion",)
DATE = re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b")


def _resources() -> list[ResourceModel]:
    files = read_messages(MESSAGES)
    assert not files.problems, files.problems
    return files.resources


RESOURCES = _resources()
BY_ID = {resource.id: resource for resource in RESOURCES}
LANGUAGES = sorted(p.stem for p in MESSAGES.glob("*.yaml") if p.name != "resources.yaml")


@pytest.fixture(scope="module")
def pages() -> Pages:
    return load_pages(MESSAGES, survey_url=SURVEY)


def onion_v3_ok(host: str) -> bool:
    """True when `host` is `<56 base32 chars>.onion` whose last 3 bytes are the checksum
    SHA3-256(".onion checksum" | pubkey | version)[:2] and version 3 (rend-spec-v3 6.1)."""
    label, dot, tld = host.rpartition(".")
    if dot != "." or tld != "onion" or not re.fullmatch(r"[a-z2-7]{56}", label):
        return False
    raw = base64.b32decode(label.upper())
    pubkey, checksum, version = raw[:32], raw[32:34], raw[34:35]
    digest = hashlib.sha3_256(b".onion checksum" + pubkey + version).digest()
    return version == b"\x03" and checksum == digest[:2]


def _onion_host(resource: ResourceModel) -> str:
    assert resource.onion is not None
    return urlsplit(resource.onion).hostname or ""


ONIONS = [r for r in RESOURCES if r.onion is not None]
PHONES = [r for r in RESOURCES if r.phone is not None]


def test_there_is_an_onion_and_a_phone_to_check() -> None:
    assert ONIONS
    assert PHONES
    assert BY_ID["redirection"].onion is not None


@pytest.mark.parametrize("resource", ONIONS, ids=lambda r: r.id)
def test_every_onion_is_a_v3_address_with_a_valid_checksum(resource: ResourceModel) -> None:
    assert onion_v3_ok(_onion_host(resource)), resource.onion


def test_the_checksum_check_refuses_one_changed_character() -> None:
    host = _onion_host(BY_ID["redirection"])
    label = host.removesuffix(".onion")
    changed = label[:10] + ("a" if label[10] != "a" else "b") + label[11:]
    assert not onion_v3_ok(changed + ".onion")
    assert not onion_v3_ok(label[:16] + ".onion")  # a v2-length address
    assert not onion_v3_ok(label.upper() + ".onion")


def test_the_retired_redirection_onion_is_gone() -> None:
    hosts = {_onion_host(r) for r in ONIONS}
    assert not hosts & set(RETIRED_ONIONS)


@pytest.mark.parametrize("resource", PHONES, ids=lambda r: r.id)
def test_phone_numbers_have_a_dialable_shape(resource: ResourceModel) -> None:
    phone = resource.phone or ""
    assert re.fullmatch(r"\+?[0-9][0-9 -]*[0-9]", phone), phone
    digits = re.sub(r"[^0-9]", "", phone)
    assert 7 <= len(digits) <= 15, phone  # ITU-T E.164: at most 15 digits
    if not phone.startswith("+"):  # a national number only makes sense for named countries
        assert "any" not in resource.countries, phone
        assert len(resource.countries) <= 2, phone


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.id)
def test_every_resource_records_its_source_and_check_date(resource: ResourceModel) -> None:
    if resource.verified:
        note = resource.verified_note or ""
        assert DATE.search(note), note
        assert re.search(r"https?://|github\.com/|\b[a-z0-9-]+\.[a-z]{2,}/", note), note
    else:  # says what was looked for, and when, for the operator who checks it
        assert DATE.search(resource.note), resource.note


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_resource_is_listed_on_every_page_of_its_languages(
    pages: Pages, language: str
) -> None:
    expected = [r.id for r in RESOURCES if language in r.languages or "any" in r.languages]
    for variant in VARIANTS:
        body = pages.block(language, variant).body.decode()
        for resource_id in expected:
            assert f'href="{LINK_PREFIX}help-{resource_id}?' in body, (language, variant)


def test_help_for_young_people_exists_in_german() -> None:
    served = {lang for rid in YOUNG_PEOPLE for lang in BY_ID[rid].languages}
    assert "de" in served
    for resource_id in YOUNG_PEOPLE:
        name = BY_ID[resource_id].name.lower()
        assert "young people" in name or "jugendliche" in name, name


@pytest.mark.parametrize("resource_id", YOUNG_PEOPLE)
def test_help_for_young_people_is_on_the_pages_of_the_languages_it_serves(
    pages: Pages, resource_id: str
) -> None:
    resource = BY_ID[resource_id]
    link = f'href="{LINK_PREFIX}help-{resource_id}?'.encode()
    for language in LANGUAGES:
        serves = language in resource.languages
        for variant in VARIANTS:
            body = pages.block(language, variant).body
            assert (link in body) is serves, (resource_id, language, variant)
            if serves:
                assert str(escape(resource.name)).encode() in body
