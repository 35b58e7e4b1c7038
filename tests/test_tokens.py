"""Continue tokens: what a token proves, and what no token can."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from intercept.tokens import AnswerTokens, ContinueTokens

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


def test_an_answer_token_counts_once_and_only_when_it_is_ours() -> None:
    answers = AnswerTokens.from_secret(SECRET, 3600)
    token = answers.mint("harm", "de", now=NOW)
    assert answers.spend(token, now=NOW + 10) == ("harm", "de")
    assert answers.spend(token, now=NOW + 20) is None  # spent
    other = answers.mint("help", "en", now=NOW)
    payload, _, mac = other.rpartition(".")
    assert answers.spend(payload.replace("help", "harm") + "." + mac, now=NOW) is None  # forged
    assert answers.spend(other, now=NOW + 3601) is None  # expired
    assert AnswerTokens.from_secret("another secret entirely", 3600).spend(other, now=NOW) is None
    for damaged in ("", "x", "1.2.3.4", other + "²", "9" * 40 + ".a.b.c.d"):
        assert answers.spend(damaged, now=NOW) is None
    assert answers.spend(other, now=NOW) == ("help", "en")


def test_a_full_spent_set_refuses_rather_than_forgets() -> None:
    """Forgetting an unexpired nonce early would let its token count twice: with no room,
    new answers are not counted; room is made only from nonces whose tokens expired."""
    answers = AnswerTokens(b"k" * 32, ttl=100, capacity=3)
    early = [answers.mint("harm", "en", now=NOW) for _ in range(3)]
    assert all(answers.spend(t, now=NOW + 1) for t in early)
    late = answers.mint("harm", "en", now=NOW + 50)
    assert answers.spend(late, now=NOW + 60) is None  # full of live nonces: refused
    assert all(answers.spend(t, now=NOW + 60) is None for t in early)  # and none forgotten
    again = answers.mint("harm", "en", now=NOW + 101)
    assert answers.spend(again, now=NOW + 101) == ("harm", "en")  # the early ones expired


def test_processes_serving_together_spend_each_nonce_once(tmp_path: Path) -> None:
    """Workers of one server share a folder: a token answered at one worker is refused at
    the others; each deletes the files of its own nonces once they expire; a folder that
    cannot be written refuses rather than count twice."""
    shared = tmp_path / "answers"
    first = AnswerTokens(b"k" * 32, ttl=100, capacity=1, folder=shared)
    second = AnswerTokens(b"k" * 32, ttl=100, folder=shared)
    token = first.mint("harm", "en", now=NOW)
    assert second.spend(token, now=NOW + 1) == ("harm", "en")
    assert first.spend(token, now=NOW + 2) is None  # its sibling spent it
    own = first.mint("help", "en", now=NOW)
    assert first.spend(own, now=NOW + 3) == ("help", "en")
    assert len(list(shared.iterdir())) == 2
    later = first.mint("help", "en", now=NOW + 200)
    assert first.spend(later, now=NOW + 201) == ("help", "en")  # room made: `own` expired
    assert sorted(p.name for p in shared.iterdir()) == sorted(
        token.split(".")[1:2] + later.split(".")[1:2]
    )
    (tmp_path / "file").write_text("")
    blocked = AnswerTokens(b"k" * 32, ttl=100, folder=tmp_path / "file" / "answers")
    assert blocked.spend(blocked.mint("harm", "en", now=NOW), now=NOW) is None


def test_secrets_rotate_without_breaking_links_in_flight() -> None:
    """A fleet takes a new secret first (new, old), then drops the old one a token's life
    later: what the old secret made keeps working meanwhile; the first secret signs."""
    old = "the-old-secret-of-enough-length"
    new = "the-new-secret-of-enough-length"
    before = ContinueTokens.from_secret(old, 900)
    rotating = ContinueTokens.from_secret([new, old], 900)
    after = ContinueTokens.from_secret(new, 900)
    token = before.sign("search", "purple teapot", now=NOW)
    sealed = before.seal("search", "/search?q=purple+teapot", "purple teapot", now=NOW)
    assert rotating.verify(token, "search", ["purple teapot"], now=NOW)
    opened = rotating.open(sealed, now=NOW)
    assert opened is not None
    assert opened.target.startswith("/search?q=purple+teapot&_intercept_continue=")
    fresh = rotating.sign("search", "purple teapot", now=NOW)
    assert after.verify(fresh, "search", ["purple teapot"], now=NOW)  # signed by the new one
    assert not before.verify(fresh, "search", ["purple teapot"], now=NOW)
    assert not after.verify(token, "search", ["purple teapot"], now=NOW)  # the old one dropped
    assert after.open(sealed, now=NOW) is None
    answers_before = AnswerTokens.from_secret(old, 3600)
    answers_rotating = AnswerTokens.from_secret([new, old], 3600)
    minted = answers_before.mint("harm", "en", now=NOW)
    assert answers_rotating.spend(minted, now=NOW) == ("harm", "en")
    assert AnswerTokens.from_secret(new, 3600).spend(answers_rotating.mint("help", "en")) == (
        "help",
        "en",
    )
