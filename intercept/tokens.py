"""The stateless "continue to results" tokens of warn pages, and the single-use tokens of a
page's answer form (`AnswerTokens`, at the end).

A warn interstitial offers to continue. Its link never holds the query (the page must not echo
it): the link carries the search target sealed with AES-GCM, `/_intercept/continue/<sealed>`.
Opening it redirects to the original target with `_intercept_continue=<token>` added, where the
token is an HMAC over the route, the normalized query and an expiry. The proxy verifies the
token, strips it, and forwards the search; a valid token lifts a warn, never a block. A POST
search is sealed with its (small) body instead, and opening the link replays it upstream.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from intercept.rules.normalize import alternatives

__all__ = [
    "TOKEN_PARAM", "UNKNOWN", "AnswerTokens", "Continuation", "ContinueTokens", "Labels",
    "same_site", "strip_param",
]  # fmt: skip

TOKEN_PARAM = "_intercept_continue"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def strip_param(raw_target: str, name: str = TOKEN_PARAM) -> tuple[str, str | None]:
    """The target without the parameter `name`, and that parameter's value (raw)."""
    path, sep, query = raw_target.partition("?")
    if not sep:
        return raw_target, None
    kept: list[str] = []
    value: str | None = None
    for pair in query.split("&"):
        key, _, item = pair.partition("=")
        if key == name:
            value = item
        else:
            kept.append(pair)
    return (path + ("?" + "&".join(kept) if kept else "")), value


_CLOCK_SLACK = 60  # seconds a replica's clock may run behind the one that signed


@dataclass(frozen=True, slots=True)
class ContinueTokens:
    """Signs and checks continue tokens; seals and opens continue links. Keys derive from the
    secret, so tokens stay valid across workers and restarts that share it. Secrets rotate:
    with several, the first signs and seals, and every one verifies and opens, so a fleet
    can take a new secret first, and drop the old one a token's life later, without breaking
    a link in flight."""

    mac_key: bytes
    seal_key: bytes
    ttl: int
    old_mac_keys: tuple[bytes, ...] = ()  # of the secrets after the first: verify only
    old_seal_keys: tuple[bytes, ...] = ()

    @classmethod
    def from_secret(cls, secret: str | bytes | Sequence[str] | None, ttl: int) -> ContinueTokens:
        """Keys from the configured secret(s), the first signing; without one, random keys
        for this process."""
        raws = _raw_secrets(secret)
        macs = [hmac.new(raw, b"intercept continue token", hashlib.sha256).digest() for raw in raws]
        seals = [hmac.new(raw, b"intercept continue link", hashlib.sha256).digest() for raw in raws]
        return cls(macs[0], seals[0], ttl, tuple(macs[1:]), tuple(seals[1:]))

    def _mac(self, route: str, normalized: str, expiry: int, key: bytes | None = None) -> str:
        message = f"{route}\x00{expiry}\x00{normalized}".encode("utf-8", "surrogatepass")
        return _b64(hmac.new(key or self.mac_key, message, hashlib.sha256).digest())

    def sign(self, route: str, queries: str | Iterable[str], now: float | None = None) -> str:
        """A token for the search on `route` holding these warned `queries` (one, or all of
        a search that warns on several values), by their normalized readings."""
        expiry = int((time.time() if now is None else now) + self.ttl)
        return f"{expiry}.{self._mac(route, _key(queries), expiry)}"

    def verify(
        self, token: str, route: str, queries: Iterable[str], now: float | None = None
    ) -> bool:
        """True when `token` was signed for this route and these queries (as normalized:
        `purple teap0t` is `purple teapot`), and has not expired. An expiry further ahead
        than this signer's `ttl` (plus a minute for clocks of replicas that differ) is no
        token it made, and is refused."""
        expiry_text, _, mac = token.partition(".")
        if not (token.isascii() and expiry_text.isdigit()) or len(expiry_text) > _MAX_DIGITS:
            return False  # "²" is a digit to isdigit(); compare_digest wants ASCII; and int()
            # refuses over 4,300 digits (a ValueError, once a 500)
        moment = time.time() if now is None else now
        expiry = int(expiry_text)
        if not moment <= expiry <= moment + self.ttl + _CLOCK_SLACK:
            return False
        key = _key(queries)
        return any(
            hmac.compare_digest(mac, self._mac(route, key, expiry, mac_key))
            for mac_key in (self.mac_key, *self.old_mac_keys)
        )

    def seal(
        self,
        route: str,
        target: str,
        queries: str | Iterable[str],
        now: float | None = None,
        *,
        form: tuple[str, bytes] | None = None,
        labels: Labels | None = None,
    ) -> str:
        """An opaque link id holding the target, route and a fresh token, encrypted; for a
        POST search also its body and content type (`form`), so the link can replay it; and
        the page's `labels` (the warn rule's category, the message variant, the language:
        configuration values, never anything of the searcher), for counting the continue."""
        nonce = os.urandom(12)
        fields: dict[str, str] = {"r": route, "t": target, "k": self.sign(route, queries, now)}
        if form is not None:
            fields["c"], fields["b"] = form[0], _b64(form[1])
        if labels is not None:
            fields["l"] = "\x1f".join(labels)
        plain = json.dumps(fields).encode()
        return _b64(nonce + AESGCM(self.seal_key).encrypt(nonce, plain, b"continue"))

    def _unseal(self, raw: bytes) -> bytes:
        """The plain text of a sealed link, by whichever key sealed it; `InvalidTag` if none."""
        for key in (self.seal_key, *self.old_seal_keys):
            try:
                return AESGCM(key).decrypt(raw[:12], raw[12:], b"continue")
            except InvalidTag:
                continue
        raise InvalidTag

    def open(self, sealed: str, now: float | None = None) -> Continuation | None:
        """What a continue link leads to, or None for a forged, damaged or expired link."""
        try:
            raw = _unb64(sealed)
            fields = json.loads(self._unseal(raw))
            target, token = str(fields["t"]), str(fields["k"])
            form = (str(fields["c"]), _unb64(str(fields["b"]))) if "b" in fields else None
            labels = _labels(str(fields.get("l", "")))
        except (InvalidTag, ValueError, KeyError, TypeError):
            return None
        expiry = token.partition(".")[0]
        if not (expiry.isascii() and expiry.isdigit()) or len(expiry) > _MAX_DIGITS:
            return None
        if int(expiry) < (time.time() if now is None else now):
            return None
        if not same_site(target):
            return None  # "//evil.example/../search" would send the searcher away
        if form is not None:
            return Continuation(target, form, labels)
        joiner = "&" if "?" in target else "?"
        return Continuation(f"{target}{joiner}{TOKEN_PARAM}={token}", None, labels)


Labels = tuple[str, str, str]
"""A warn page's (category, variant, language)."""

UNKNOWN: Labels = ("unknown", "unknown", "unknown")
"""The labels of a link sealed without them (by a version before they were sealed in)."""


def _labels(text: str) -> Labels:
    parts = text.split("\x1f")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else UNKNOWN


def _raw_secrets(secret: str | bytes | Sequence[str] | None) -> list[bytes]:
    """The configured secrets as bytes, the signing one first; never an empty key (anyone
    could sign with it): without a secret, one random key for this process."""
    listed = [secret] if isinstance(secret, str | bytes) else list(secret or ())
    raws = [s.encode() if isinstance(s, str) else s for s in listed if s]
    return raws or [os.urandom(32)]


def _key(queries: str | Iterable[str]) -> str:
    """What a token signs: the normalized readings of the queries, distinct and sorted (for
    one query, just its reading, so tokens issued before several were signed still work)."""
    texts = [queries] if isinstance(queries, str) else queries
    return "\x1f".join(sorted({alternatives(text)[0] for text in texts}))


_MAX_DIGITS = 20  # an expiry in Unix seconds; far more than any token can hold


def same_site(target: str) -> bool:
    """Whether `target`, as a redirect's Location, stays on this site: a path, never one a
    browser reads as another host (`//host/...`, `/\\host/...`) or one with control
    characters."""
    return target.startswith("/") and not target.startswith(("//", "/\\")) and target.isprintable()


@dataclass(frozen=True, slots=True)
class Continuation:
    """Where a continue link leads: a redirect to `target` (a GET search, token added), or,
    with `form` (content type, body), the POST search replayed to the upstream."""

    target: str
    form: tuple[str, bytes] | None
    labels: Labels = UNKNOWN  # the warn page's (category, variant, language)


class AnswerTokens:
    """The token in a page's answer form: `<expiry>.<nonce>.<variant>.<language>.<mac>`, an
    HMAC over the rest with a key derived from the warn secret. The nonce is 12 random bytes,
    made for the page and nothing else: it says nothing about the person or the search.

    `spend` accepts a token once. The nonces spent are kept until their token expires, in a
    bounded set (`capacity`); when the set is full of unexpired nonces, further answers are
    not counted (never is an old nonce forgotten early, which would let it count twice). So
    the answers counted never outnumber the pages shown. Processes that serve together
    (`--workers N`) share `folder`: a nonce is spent there too, as a file created with
    `O_EXCL` (atomic across processes), so a token replayed to another worker is refused; a
    process deletes the files of its own spent nonces once they expire. A folder that cannot
    be written refuses the answer (not counted) rather than risk counting it twice."""

    __slots__ = ("_key", "_lock", "_old_keys", "_spent", "capacity", "folder", "ttl")

    def __init__(
        self,
        key: bytes,
        ttl: int,
        capacity: int = 65_536,
        folder: Path | None = None,
        old_keys: tuple[bytes, ...] = (),
    ) -> None:
        self._key = key
        self._old_keys = old_keys  # of rotated-out secrets: verify only
        self._lock = threading.Lock()  # WSGI servers spend from several threads
        self._spent: dict[str, float] = {}  # nonce -> its token's expiry
        self.ttl = ttl
        self.capacity = capacity
        self.folder = folder

    @classmethod
    def from_secret(
        cls, secret: str | bytes | Sequence[str] | None, ttl: int, folder: Path | None = None
    ) -> AnswerTokens:
        """Keys from the configured warn secret(s), the first signing; without one, a random
        key for this process."""
        keys = [hmac.new(raw, b"intercept answer token", hashlib.sha256).digest()
                for raw in _raw_secrets(secret)]  # fmt: skip
        return cls(keys[0], ttl, folder=folder, old_keys=tuple(keys[1:]))

    def _mac(self, payload: str, key: bytes | None = None) -> str:
        return _b64(hmac.new(key or self._key, payload.encode(), hashlib.sha256).digest())

    def mint(self, variant: str, language: str, now: float | None = None) -> str:
        """A fresh token for a page in `variant` and `language` (configuration labels)."""
        expiry = int((time.time() if now is None else now) + self.ttl)
        payload = f"{expiry}.{_b64(os.urandom(12))}.{variant}.{language}"
        return f"{payload}.{self._mac(payload)}"

    def spend(self, token: str, now: float | None = None) -> tuple[str, str] | None:
        """The (variant, language) of a valid, unexpired token not spent before, now spent;
        None for anything else (forged, damaged, expired, spent, or no room to remember)."""
        payload, _, mac = token.rpartition(".")
        parts = payload.split(".")
        if len(parts) != 4 or not token.isascii() or not parts[0].isdigit():
            return None
        if len(parts[0]) > _MAX_DIGITS or not any(
            hmac.compare_digest(mac, self._mac(payload, key))
            for key in (self._key, *self._old_keys)
        ):
            return None
        moment = time.time() if now is None else now
        expiry = int(parts[0])
        if not moment <= expiry <= moment + self.ttl + _CLOCK_SLACK:
            return None
        nonce = parts[1]
        with self._lock:
            if nonce in self._spent:
                return None
            if len(self._spent) >= self.capacity:
                self._forget_expired(moment)
                if len(self._spent) >= self.capacity:
                    return None
            if self.folder is not None and not self._spend_shared(nonce):
                return None
            self._spent[nonce] = expiry
        return parts[2], parts[3]

    def _spend_shared(self, nonce: str) -> bool:
        """Spend `nonce` in the shared folder: True only for the first process to do so."""
        assert self.folder is not None
        try:
            self.folder.mkdir(mode=0o700, exist_ok=True)
            os.close(os.open(self.folder / nonce, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except OSError:  # spent by another worker (FileExistsError), or no folder to write
            return False
        return True

    def _forget_expired(self, moment: float) -> None:
        expired = [n for n, e in self._spent.items() if e < moment]
        for nonce in expired:
            del self._spent[nonce]
            if self.folder is not None:
                with contextlib.suppress(OSError):
                    (self.folder / nonce).unlink()
