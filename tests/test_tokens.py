"""Continue tokens: what a token proves, and what no token can."""

from __future__ import annotations

import hashlib
import hmac

from intercept.tokens import ContinueTokens

NOW = 1_800_000_000.0
SECRET = "a-shared-secret-of-enough-length"


def test_a_token_verifies_for_its_route_and_query_until_it_expires() -> None:
    tokens = ContinueTokens.from_secret(SECRET, 900)
    token = tokens.sign("search", "purple teapot", now=NOW)
    assert tokens.verify(token, "search", ["purple teap0t"], now=NOW + 899)
    assert not tokens.verify(token, "search", ["purple teapot"], now=NOW + 901)
    assert not tokens.verify(token, "other", ["purple teapot"], now=NOW)
    assert not tokens.verify(token, "search", ["plain teapot"], now=NOW)


def test_replicas_sharing_a_secret_share_tokens() -> None:
    token = ContinueTokens.from_secret(SECRET, 900).sign("search", "purple teapot", now=NOW)
    assert ContinueTokens.from_secret(SECRET, 900).verify(
        token, "search", ["purple teapot"], now=NOW
    )


def test_an_expiry_beyond_the_ttl_is_refused() -> None:
    """A signer never makes such a token; one that claims to be valid for a year is forged,
    or was signed with a longer TTL that is no longer configured."""
    long_lived = ContinueTokens.from_secret(SECRET, 86_400).sign("search", "teapot", now=NOW)
    short = ContinueTokens.from_secret(SECRET, 900)
    assert not short.verify(long_lived, "search", ["teapot"], now=NOW)
    slightly_ahead = ContinueTokens.from_secret(SECRET, 900).sign("search", "teapot", now=NOW + 30)
    assert short.verify(slightly_ahead, "search", ["teapot"], now=NOW)  # clocks differ a little


def test_an_empty_secret_is_no_key() -> None:
    """With an empty secret anyone could compute the MAC key; a random one is used instead,
    so two processes given "" share nothing."""
    known = hmac.new(b"", b"intercept continue token", hashlib.sha256).digest()
    first, second = ContinueTokens.from_secret("", 900), ContinueTokens.from_secret("", 900)
    assert known not in (first.mac_key, second.mac_key)
    token = first.sign("search", "teapot", now=NOW)
    assert first.verify(token, "search", ["teapot"], now=NOW)
    assert not second.verify(token, "search", ["teapot"], now=NOW)


def test_a_sealed_link_carries_its_pages_labels_and_only_inside_the_seal() -> None:
    """The warn page's (category, variant, language) ride in the sealed link, for counting the
    continue; a link sealed without them opens with them unknown."""
    tokens = ContinueTokens.from_secret(SECRET, 900)
    labels = ("zqcategory", "zqvariant", "zqlanguage")
    sealed = tokens.seal("search", "/search?q=purple+teapot", "purple teapot", labels=labels)
    for label in labels:
        assert label not in sealed  # encrypted, not merely encoded
    opened = tokens.open(sealed)
    assert opened is not None
    assert opened.labels == labels
    bare = tokens.open(tokens.seal("search", "/search?q=purple+teapot", "purple teapot"))
    assert bare is not None
    assert bare.labels == ("unknown", "unknown", "unknown")
    posted = tokens.open(
        tokens.seal("search", "/search", "purple teapot", form=("text/plain", b"q"), labels=labels)
    )
    assert posted is not None
    assert (posted.form, posted.labels) == (("text/plain", b"q"), labels)
