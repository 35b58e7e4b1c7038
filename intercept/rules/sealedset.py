"""Matching a sealed rule set: the phrases are keyed hashes, never plain text.

`intercept.rules.seal` writes a sealed bundle from compiled `word` rules; this module holds what
both sides of the seal must agree on (how a normalized text is hashed, how an entry is
encrypted) and `SealedRuleSet`, the matcher over a loaded bundle.

How a plaintext `RuleSet` finds a `word` phrase: every lookup key is a padded, collapsed
normalized form (" big cat ", " bigcat "), and the automaton finds it where the collapsed
reading of the query holds the same words in a row. So a key is found exactly when some run of
consecutive words of a collapsed reading, joined by single spaces, equals the key's words.
`SealedRuleSet` looks those runs up by hash:

- each key is stored as the first 16 bytes of HMAC-SHA256(lookup subkey, "big cat");
- the last 16 bytes of the same HMAC of every proper word-prefix of a key ("big") form the
  prefix set, so a scan extends a run of words only while it may still become a key: one HMAC
  per query word and reading in the common case, and no phrase length stored anywhere;
- what a key means (rule, role, phrase number, and the run lengths that stretching is checked
  against) is encrypted with AES-256-GCM under HMAC-SHA256(payload subkey, "big cat"): it can
  be opened only by a query holding the phrase (or by someone who has the key and guesses it).

The rest is the plaintext matcher's, inherited: the same readings (`readings_for_matching`,
with `edge_alternatives` only when nothing else matched), the same run-length verification,
`unless`, `all_of` (`intercept.rules.matching`), and the same decision order. Decisions equal
those of the plaintext rules (`tests/rules/test_seal.py` compares them query by query).
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from intercept.rules.matching import (
    Found,
    Hit,
    hit,
    reading_offsets,
    record,
    role_field,
    verify,
)
from intercept.rules.normalize import collapse, doubled_runs
from intercept.rules.ruleset import RuleSet
from intercept.rules.rulespec import MatchMode

__all__ = [
    "FORMAT",
    "BundleKeys",
    "Entry",
    "KeyedHash",
    "SealedRuleSet",
    "close_entries",
    "encode_text",
    "open_entries",
]

FORMAT = "intercept-sealed-bundle/1"
"""The marker (`format`) of a sealed bundle file, and the label of every key derivation."""

ID_BYTES = 16
"""Key ids and prefix ids are halves of one HMAC-SHA256: 128 bits each."""

_NONCE = bytes(12)  # each payload key encrypts one payload only (see `close_entries`)
_PAD = 16
_COUNT = struct.Struct(">H")
_ENTRY = struct.Struct(">IBHB")  # rule, role, phrase, number of shapes
_RUN = struct.Struct(">HH")  # position in the padded collapsed key, run length

Entry = tuple[int, int, int, tuple[tuple[int, ...], ...] | None]
"""What one lookup key means: (rule index in the bundle, role, phrase index, run lengths).

The role is 0 for `terms`, 1 for `unless`, 2 + N for `all_of[N]`. Run lengths are None when
the phrase's form has no doubled letter, else every form's run lengths (spaces included)."""


class KeyedHash:
    """HMAC-SHA256 under one key, with the padded key blocks hashed once (RFC 2104): twice as
    fast as `hmac.digest` for the short texts the scan hashes."""

    __slots__ = ("inner", "outer")

    def __init__(self, key: bytes) -> None:
        block = (key if len(key) <= 64 else hashlib.sha256(key).digest()).ljust(64, b"\0")
        self.inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))  # after the key block
        self.outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def __call__(self, message: bytes) -> bytes:
        inner = self.inner.copy()
        inner.update(message)
        outer = self.outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def encode_text(text: str) -> bytes:
    # lone surrogates may survive normalization in a query; they never match a phrase
    return text.encode("utf-8", "surrogatepass")


@dataclass(frozen=True, slots=True)
class BundleKeys:
    """The subkeys of one bundle, derived from the secret and the bundle's random salt.

    Each is HMAC-SHA256(secret, "intercept-sealed-bundle/1 <label>" + salt); the salt makes
    two bundles sealed with one key unlinkable (no shared hashes). The fingerprint, without
    salt, tells a wrong key from a damaged bundle.
    """

    lookup: bytes
    payload: bytes
    mac: bytes

    @classmethod
    def derive(cls, secret: bytes, salt: bytes) -> BundleKeys:
        def sub(label: str) -> bytes:
            return hmac.digest(secret, f"{FORMAT} {label}".encode() + salt, "sha256")

        return cls(sub("lookup"), sub("payload"), sub("mac"))

    @staticmethod
    def fingerprint(secret: bytes) -> str:
        """A public name of the secret (HMAC of a fixed label), 16 bytes in hex."""
        digest = hmac.digest(secret, f"{FORMAT} key fingerprint".encode(), "sha256")
        return digest[:ID_BYTES].hex().upper()


def _payload_cipher(payload_key: bytes, text: str) -> AESGCM:
    return AESGCM(hmac.digest(payload_key, encode_text(text), "sha256"))


def close_entries(payload_key: bytes, text: str, key_id: bytes, entries: Sequence[Entry]) -> bytes:
    """Encrypt what the key `text` means. The AES key is derived from the text itself, so it
    is used for this one payload only and a fixed nonce is safe.

    The plaintext is binary: the number of entries (2 bytes), then per entry its rule (4),
    role (1), phrase (2) and number of run-length shapes (1), and per shape the runs longer
    than one as (position, length) pairs (2 bytes for their number, 2 + 2 each). Padded with
    zeros to a multiple of 16 bytes, one entry with one stretched run fits 16 bytes, so the
    size of a payload only says whether several rules share the key or its phrase has several
    doubled letters.
    """
    plain = bytearray(_COUNT.pack(len(entries)))
    for rule, role, phrase, shapes in entries:
        plain += _ENTRY.pack(rule, role, phrase, 0 if shapes is None else len(shapes))
        for shape in shapes or ():
            stretched = [(index, count) for index, count in enumerate(shape) if count > 1]
            plain += _COUNT.pack(len(stretched))
            for index, count in stretched:
                plain += _RUN.pack(index, count)
    plain += bytes(-len(plain) % _PAD)
    return _payload_cipher(payload_key, text).encrypt(_NONCE, bytes(plain), key_id)


def open_entries(payload_key: bytes, text: str, key_id: bytes, sealed: bytes) -> list[Entry]:
    """The entries `close_entries` sealed, with whole run-length shapes again (the key is
    `text` padded with a space at each end, so its length is known). Raises `ValueError` for
    a payload that does not open (the bundle's MAC rules that out for a loaded bundle)."""
    try:
        plain = _payload_cipher(payload_key, text).decrypt(_NONCE, sealed, key_id)
    except InvalidTag:
        raise ValueError("a sealed entry does not open") from None
    length = len(text) + 2
    (count,) = _COUNT.unpack_from(plain)
    at = _COUNT.size
    entries: list[Entry] = []
    for _ in range(count):
        rule, role, phrase, shape_count = _ENTRY.unpack_from(plain, at)
        at += _ENTRY.size
        shapes: list[tuple[int, ...]] = []
        for _ in range(shape_count):
            (stretched,) = _COUNT.unpack_from(plain, at)
            at += _COUNT.size
            shape = [1] * length
            for _ in range(stretched):
                index, run = _RUN.unpack_from(plain, at)
                at += _RUN.size
                shape[index] = run
            shapes.append(tuple(shape))
        entries.append((rule, role, phrase, tuple(shapes) if shape_count else None))
    return entries


@dataclass(frozen=True, slots=True, eq=False)
class SealedRuleSet(RuleSet):
    """A rule set loaded from a sealed bundle (`intercept.rules.seal.load_sealed`).

    It is a `RuleSet` (same `match`, `match_all`, `explain`, `rules`, `lists`, `version`,
    `len`), so every front door and command uses it unchanged; only the scan differs (see the
    module docstring). Its `rules` carry ids and labels but no phrases and no examples, and
    `explain` names a phrase by its place in the source rule ("<sealed terms[0]>").
    The plaintext automaton fields of `RuleSet` are empty here.
    """

    _keys: dict[bytes, bytes]  # key id -> sealed entries
    _prefixes: frozenset[bytes]  # prefix ids
    _lookup: KeyedHash
    _payload_key: bytes
    _index: tuple[int, ...]  # bundle rule index -> index in `rules`, or -1 (expired)

    def __repr__(self) -> str:
        names = ", ".join(info.name for info in self.lists) or "-"
        return f"<SealedRuleSet {len(self.rules)} rules, lists {names}, version {self.version}>"

    def _rule_word(self, word: str, before: tuple[str, ...]) -> bool:
        """As `RuleSet._rule_word`: whether `word`, alone or after the last one or two words
        of `before`, is a key or a word-prefix of one, by their keyed hashes."""
        for count in range(min(2, len(before)) + 1):
            text = " ".join((*before[len(before) - count :], word))
            digest = self._lookup(encode_text(text))
            if digest[:ID_BYTES] in self._keys or digest[ID_BYTES:] in self._prefixes:
                return True
        return False

    def _scan(
        self, readings: Sequence[str], hits: list[Hit] | None = None, first_index: int = 0
    ) -> Found:
        found_rules: Found = (set(), set(), {})
        keys, prefixes = self._keys, self._prefixes
        inner, outer = self._lookup.inner, self._lookup.outer
        cache: dict[str, bytes] | None = {} if len(readings) > 1 else None  # shared words
        for reading_index, reading in enumerate(readings, first_index):
            collapsed = collapse(reading)
            if len(collapsed) <= 2:
                continue  # no word
            words = collapsed[1:-1].split(" ")
            count = len(words)
            found: list[tuple[int, str, bytes, bytes]] | None = None
            for first in range(count):
                text = words[first]
                last = first
                while True:  # the run of words from `first`, while it may still be a key
                    digest = cache.get(text) if cache is not None else None
                    if digest is None:  # HMAC-SHA256, inlined (see `KeyedHash`)
                        hashed = inner.copy()
                        hashed.update(text.encode("utf-8", "surrogatepass"))
                        outside = outer.copy()
                        outside.update(hashed.digest())
                        digest = outside.digest()
                        if cache is not None:
                            cache[text] = digest
                    key_id = digest[:ID_BYTES]
                    sealed = keys.get(key_id)
                    if sealed is not None:
                        if found is None:
                            found = []
                        found.append((first, text, key_id, sealed))
                    last += 1
                    if last >= count or digest[ID_BYTES:] not in prefixes:
                        break
                    text += " " + words[last]
            if found is not None:
                self._resolve(found, words, reading, collapsed, reading_index, found_rules, hits)
        return found_rules

    def _resolve(
        self,
        found: list[tuple[int, str, bytes, bytes]],
        words: list[str],
        reading: str,
        collapsed: str,
        reading_index: int,
        into: Found,
        hits: list[Hit] | None,
    ) -> None:
        """Open the entries of the keys found in one reading and keep those whose run lengths
        the query satisfies, exactly as `RuleSet._scan` does for an automaton hit."""
        doubles = doubled_runs(reading) if collapsed != reading else {}
        positions = list(doubles)  # increasing
        doubled_words: dict[int, bool] = {}
        offsets: list[int] | None = None
        opened: dict[bytes, list[Entry]] = {}
        word, start = 0, 0
        for first, text, key_id, sealed in found:  # in word order
            while word < first:
                start += len(words[word]) + 1
                word += 1
            # the padded key " text " lies at `start`..`end` of `collapsed`
            length = len(text) + 2
            end = start + length - 1
            at = bisect.bisect_left(positions, start)
            plain = at == len(positions) or positions[at] > end
            entries = opened.get(key_id)
            if entries is None:
                entries = opened[key_id] = open_entries(self._payload_key, text, key_id, sealed)
            for bundle_rule, role, phrase, shapes in entries:
                rule = self._index[bundle_rule]
                if rule < 0:
                    continue  # expired since the bundle was sealed
                if plain:
                    if shapes is not None:
                        continue  # the phrase has a doubled letter that the query lacks
                else:
                    shapes = shapes or ((1,) * length,)
                    if not verify(shapes, MatchMode.WORD, doubles, collapsed, start, doubled_words):
                        continue
                record(into, rule, role)
                if hits is not None:
                    if offsets is None:
                        offsets = reading_offsets(reading)
                    # named by its place in the source rule: the phrase is not in the bundle
                    place = f"<sealed {role_field(role)}[{phrase}]>"
                    spec_id = self.rules[rule].id
                    hits.append(
                        hit(spec_id, role, place, reading_index, reading, offsets, start, end)
                    )
