"""Sealed bundles: a rule set whose phrases are keyed hashes, deployable without its vocabulary.

`intercept seal PATH --key-file K -o FILE` reads and compiles rule files like every other
command, then writes each lookup key the compiler made (every normalized form of every phrase,
joined-word variants included) as HMAC-SHA256 under a subkey of the secret in K; what a key
means is encrypted under a key derived from the phrase itself (see `intercept.rules.sealedset`).
`load_sealed` (and `intercept.load_rules(path, key_file=K)`) gives a `SealedRuleSet` whose
decisions equal those of the plaintext rules.

The bundle is one JSON file (UTF-8), one rule, prefix or key a line::

    {
     "format": "intercept-sealed-bundle/1",
     "about": "...",
     "key_fingerprint": "<32 hex digits: HMAC-SHA256(secret, label), first 16 bytes>",
     "salt": "<32 hex digits, random per bundle>",
     "lists": [{"name": ..., "source": ..., "updated": ...}],
     "rules": [{"id": ..., "category": ..., "action": ..., "language": ..., "match": "word",
                "all_of": <number of groups, 0 for terms>, "list": ..., "expires": ... | null}],
     "prefixes": ["<32 hex digits>", ...],
     "keys": {"<32 hex digits>": "<hex: AES-GCM sealed entries>", ...},
     "mac": "<64 hex digits: HMAC-SHA256 over the rest, canonical JSON>"
    }

with, for a secret S, the bundle's salt and a normalized key text T ("big cat": the words of
a padded, collapsed automaton key, joined by single spaces, in UTF-8):

- subkeys: HMAC-SHA256(S, "intercept-sealed-bundle/1 " + label + salt), label `lookup`,
  `payload` or `mac`; fingerprint: HMAC-SHA256(S, "intercept-sealed-bundle/1 key
  fingerprint"), first 16 bytes;
- a key: the first 16 bytes of HMAC-SHA256(lookup, T) -> AES-256-GCM with the key
  HMAC-SHA256(payload, T), a zero nonce and the key id as associated data, of the JSON list
  `[[rule, role, phrase], [rule, role, phrase, [[run, ...], ...]], ...]` padded with spaces to
  a multiple of 16 bytes (rule: index in `rules`; role: 0 term, 1 unless, 2 + N all_of[N]);
- a prefix: the last 16 bytes of HMAC-SHA256(lookup, P) for every proper word-prefix P of
  every key text ("big" of "big cat");
- mac: HMAC-SHA256(mac, JSON of every other field with sorted keys, no spaces, ASCII only).

Binary values are uppercase hexadecimal, so a search of the file for a (lowercase) phrase never
hits by chance. Prefixes and keys are sorted by value, so their order says nothing about the
rules. Only `word` rules can be sealed: `prefix` and `substring` keys end or start inside a word,
which a hash of whole words cannot find. Examples are left out (they are vocabulary too).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import string
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ahocorasick

from intercept.errors import Problem, RuleError
from intercept.rules.ruleset import RuleSet, compile_rules, compiled_keys
from intercept.rules.rulespec import Action, ListInfo, MatchMode, RuleSpec
from intercept.rules.sealedset import (
    FORMAT,
    ID_BYTES,
    BundleKeys,
    Entry,
    KeyedHash,
    SealedRuleSet,
    close_entries,
    encode_text,
)

__all__ = [
    "KEY_ENV",
    "MIN_KEY_BYTES",
    "SealError",
    "SealReport",
    "SealResult",
    "Unsealable",
    "check_bundle",
    "find_bundle",
    "is_sealed_bundle",
    "load_sealed",
    "new_key_file",
    "open_bundle",
    "read_key_file",
    "seal_files",
    "seal_rules",
    "unsealable_reason",
    "verify_bundle",
]

KEY_ENV = "INTERCEPT_RULES_KEY_FILE"
"""The environment variable naming the key file when `--key-file` is not given."""

MIN_KEY_BYTES = 32

_MARKER = re.compile(rb'\A(?:\xef\xbb\xbf)?\s*\{\s*"format"\s*:\s*"intercept-sealed-bundle/')
_ABOUT = (
    "Intercept sealed rule bundle: phrases are keyed hashes. Load it with its key file "
    "(--key-file, INTERCEPT_RULES_KEY_FILE); see rules/README.md, 'Sealed bundles'."
)
_FIELDS = ("format", "about", "key_fingerprint", "salt", "lists", "rules", "prefixes", "keys")
_RULE_FIELDS = ("id", "category", "action", "language", "match", "all_of", "list", "expires")
_HEX = frozenset(string.hexdigits.encode())
_FORMAT_NAME = re.compile(r"intercept-sealed-bundle/[0-9]{1,6}")
_FINGERPRINT = re.compile(r"[0-9A-Fa-f]{32}")


class SealError(RuleError):
    """A bundle cannot be written or loaded: wrong or missing key, damaged or foreign file,
    rules that cannot be sealed. A `RuleError`, so everything that refuses a bad rule set
    (commands, reload) refuses a bad bundle the same way. Messages never quote a phrase, nor
    any text of a file given as a bundle beyond a format name and a key fingerprint."""

    def __init__(self, file: str | os.PathLike[str] | Sequence[Problem], message: str = "") -> None:
        if isinstance(file, str | os.PathLike):
            super().__init__([Problem(os.fspath(file), 0, None, message)])
        else:
            super().__init__(tuple(file))


class Unsealable(SealError):
    """Rules that cannot be sealed (`unsealable_reason`), each a problem with its rule id."""


# --- key files -----------------------------------------------------------------------------


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """The secret in a key file: hex digits (whitespace around them ignored) are decoded,
    anything else is taken as raw bytes. At least 32 bytes of secret, or `SealError`."""
    name = os.fspath(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise SealError(name, f"cannot read key file: {error.strerror or error}") from None
    text = raw.strip()
    if text and set(text) <= _HEX:
        if len(text) % 2:
            raise SealError(name, "key file holds an odd number of hex digits")
        secret, kind = bytes.fromhex(text.decode("ascii")), "hex-encoded "
    else:
        secret, kind = raw, ""
    if len(secret) < MIN_KEY_BYTES:
        raise SealError(
            name,
            f"key file holds {len(secret)} {kind}bytes of secret; at least {MIN_KEY_BYTES} are "
            "needed (make a key with `intercept seal --new-key FILE`)",
        )
    return secret


def new_key_file(path: str | os.PathLike[str]) -> str:
    """Create a key file of 32 random bytes in hex, readable by its owner only (mode 0600);
    never overwrites a file. Returns the key's fingerprint."""
    name = os.fspath(path)
    secret = secrets.token_bytes(MIN_KEY_BYTES)
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SealError(
            name, "exists already: a key file is never overwritten (its bundles need it)"
        ) from None
    except OSError as error:
        raise SealError(name, f"cannot create key file: {error.strerror or error}") from None
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(secret.hex() + "\n")
    os.chmod(name, 0o600)  # whatever the umask
    return BundleKeys.fingerprint(secret)


# --- recognizing bundles -------------------------------------------------------------------


def is_sealed_bundle(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a file that starts like a sealed bundle (its `format` marker first)."""
    try:
        with open(path, "rb") as file:
            head = file.read(4096)
    except OSError:
        return False
    return _MARKER.match(head) is not None


def find_bundle(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
) -> tuple[Path | None, list[str | os.PathLike[str]]]:
    """(the sealed bundle among `paths`, or None; `paths` as a list). A bundle is loaded on
    its own: with other paths beside it, `SealError`."""
    given = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    bundles = [path for path in given if is_sealed_bundle(path)]
    if not bundles:
        return None, given
    if len(given) > 1:
        raise SealError(bundles[0], "a sealed bundle is loaded on its own, not with other paths")
    return Path(bundles[0]), given


# --- sealing -------------------------------------------------------------------------------


def unsealable_reason(spec: RuleSpec) -> str | None:
    """Why a rule cannot be sealed, or None: only `word` rules can."""
    if spec.match is MatchMode.WORD:
        return None
    inside = "ends inside a word" if spec.match is MatchMode.PREFIX else "lies inside words"
    return (
        f"match '{spec.match.value}' cannot be sealed: its phrase {inside}, and a sealed "
        "bundle only finds whole words"
    )


@dataclass(frozen=True, slots=True)
class SealResult:
    """A bundle made by `seal_rules`: its text, what went in, and what was left out."""

    text: str
    rules: tuple[RuleSpec, ...]  # sealed, in bundle order
    lists: tuple[ListInfo, ...]
    keys: int
    prefixes: int
    fingerprint: str
    unsealable: tuple[tuple[RuleSpec, str], ...]  # left out with --skip-unsealable, and why
    inactive: tuple[RuleSpec, ...]  # disabled or expired: never sealed


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def seal_rules(
    specs: Sequence[RuleSpec],
    lists: Sequence[ListInfo],
    secret: bytes,
    *,
    skip_unsealable: bool = False,
    today: str | None = None,
    salt: bytes | None = None,
) -> SealResult:
    """Compile `specs` and write them as a sealed bundle (see the module docstring).

    Rules that are disabled or expired on `today` are left out, like the compiler leaves
    them out. Rules that cannot be sealed (`unsealable_reason`) are refused with
    `Unsealable` naming each, unless `skip_unsealable`. `salt` is random unless given (tests).
    """
    if len(secret) < MIN_KEY_BYTES:
        raise ValueError(f"a secret of at least {MIN_KEY_BYTES} bytes is needed")
    day = today or _today()
    live = [spec for spec in specs if spec.active_on(day)]
    inactive = tuple(spec for spec in specs if not spec.active_on(day))
    unsealable = tuple((spec, why) for spec in live if (why := unsealable_reason(spec)))
    if unsealable and not skip_unsealable:
        raise Unsealable([Problem(s.file, s.line, s.id, why) for s, why in unsealable])
    sealable = [spec for spec in live if unsealable_reason(spec) is None]
    if not sealable:
        where = specs[0].file if specs else "<rules>"
        raise SealError(where, "no rule to seal: every rule is disabled, expired or unsealable")
    compiled = compile_rules(sealable, lists, today=day)  # the limits, as for plaintext

    meanings: dict[str, list[Entry]] = {}
    for item in compiled_keys(compiled):
        if item.mode is not MatchMode.WORD:  # never: only word rules were compiled
            raise AssertionError("a sealed key must be a word key")
        meanings.setdefault(item.key, []).append((item.rule, item.role, item.phrase, item.shapes))

    salt = secrets.token_bytes(ID_BYTES) if salt is None else salt
    subkeys = BundleKeys.derive(secret, salt)
    lookup = KeyedHash(subkeys.lookup)
    keys: dict[str, str] = {}
    prefixes: set[str] = set()
    for key, entries in meanings.items():
        text = key[1:-1]  # without the padding spaces, as the scan joins words
        key_id = lookup(encode_text(text))[:ID_BYTES]
        name = key_id.hex().upper()
        if name in keys:  # 2**-128 per pair; never seen, but never merged silently
            raise AssertionError("two keys share a hash")
        entries.sort(key=lambda e: (e[0], e[1], e[2], e[3] is not None, e[3] or ()))
        keys[name] = close_entries(subkeys.payload, text, key_id, entries).hex().upper()
        words = text.split(" ")
        for count in range(1, len(words)):
            prefix = lookup(encode_text(" ".join(words[:count])))[ID_BYTES:]
            prefixes.add(prefix.hex().upper())

    document: dict[str, Any] = {
        "format": FORMAT,
        "about": _ABOUT,
        "key_fingerprint": BundleKeys.fingerprint(secret),
        "salt": salt.hex().upper(),
        "lists": [{"name": i.name, "source": i.source, "updated": i.updated} for i in lists],
        "rules": [
            {
                "id": spec.id,
                "category": spec.category,
                "action": spec.action.value,
                "language": spec.language,
                "match": spec.match.value,
                "all_of": len(spec.all_of),
                "list": spec.list_name,
                "expires": spec.expires,
            }
            for spec in compiled.rules
        ],
        "prefixes": sorted(prefixes),
        "keys": dict(sorted(keys.items())),
    }
    document["mac"] = _mac(subkeys.mac, document)
    return SealResult(
        text=_render(document),
        rules=compiled.rules,
        lists=tuple(lists),
        keys=len(keys),
        prefixes=len(prefixes),
        fingerprint=document["key_fingerprint"],
        unsealable=unsealable,
        inactive=inactive,
    )


def _canonical(document: dict[str, Any]) -> bytes:
    body = {name: value for name, value in document.items() if name != "mac"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _mac(key: bytes, document: dict[str, Any]) -> str:
    return hmac.digest(key, _canonical(document), "sha256").hex().upper()


def _render(document: dict[str, Any]) -> str:
    """JSON with one rule, prefix or key a line, `format` first (`is_sealed_bundle`)."""

    def compact(value: object) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))

    lines = ["{"]
    for number, (name, value) in enumerate(document.items(), 1):
        comma = "," if number < len(document) else ""
        if isinstance(value, list | dict) and value:
            items = (
                [compact(item) for item in value]
                if isinstance(value, list)
                else [f"{compact(k)}: {compact(v)}" for k, v in value.items()]
            )
            close = "]" if isinstance(value, list) else "}"
            lines.append(f" {compact(name)}: {'[' if close == ']' else '{'}")
            lines.extend(f"  {item}," for item in items[:-1])
            lines.append(f"  {items[-1]}")
            lines.append(f" {close}{comma}")
        else:
            lines.append(f" {compact(name)}: {compact(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- loading -------------------------------------------------------------------------------


def load_sealed(
    path: str | os.PathLike[str],
    key_file: str | os.PathLike[str] | None,
    *,
    today: str | None = None,
) -> SealedRuleSet:
    """Load a sealed bundle with the secret in `key_file` (see `read_key_file`).

    Rules whose `expires` day has come (`today`, UTC, by default the current day) are left
    out. Raises `SealError` without a key file, with a different key ("bundle was sealed with
    a different key"), for a bundle changed after sealing, or for a file that is no bundle.
    """
    name = os.fspath(path)
    if key_file is None:
        raise SealError(
            name,
            f"is a sealed bundle: give its key file (--key-file, or ${KEY_ENV}; "
            "rules_key_file in the configuration)",
        )
    secret = read_key_file(key_file)
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise SealError(name, f"cannot read bundle: {error.strerror or error}") from None
    return open_bundle(data, secret, name=name, today=today)


def open_bundle(
    data: bytes, secret: bytes, *, name: str = "<bundle>", today: str | None = None
) -> SealedRuleSet:
    """A `SealedRuleSet` from the bytes of a bundle file; see `load_sealed`."""
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise SealError(name, "not a sealed bundle: not UTF-8") from None
    except json.JSONDecodeError as error:
        raise SealError(
            name, f"damaged bundle: not JSON ({error.msg}, line {error.lineno})"
        ) from None
    if not isinstance(document, dict):
        raise SealError(name, "not a sealed bundle: not a JSON object")
    # a bundle's text is quoted only where it has the form Intercept writes (a format name,
    # a fingerprint): anything else in a file where a bundle goes could be a phrase
    found = document.get("format")
    if found != FORMAT:
        known = isinstance(found, str) and _FORMAT_NAME.fullmatch(found)
        shown = repr(found) if known else "none" if found is None else "(not shown)"
        raise SealError(name, f"unsupported bundle format {shown} (this Intercept reads {FORMAT})")
    fingerprint = BundleKeys.fingerprint(secret)
    sealed_with = document.get("key_fingerprint")
    if sealed_with != fingerprint:
        known = isinstance(sealed_with, str) and _FINGERPRINT.fullmatch(sealed_with)
        shown = str(sealed_with) if known else "none" if sealed_with is None else "(not shown)"
        raise SealError(
            name,
            f"bundle was sealed with a different key (key fingerprint {shown}; the key "
            f"file's is {fingerprint})",
        )
    salt = _hex(document, "salt", name, size=ID_BYTES)
    subkeys = BundleKeys.derive(secret, salt)
    mac = document.get("mac")
    if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(subkeys.mac, document)):
        raise SealError(name, "bundle was changed after sealing, or is damaged (MAC mismatch)")
    return _rule_set(document, subkeys, bytes.fromhex(mac), name, today or _today())


def _hex(document: dict[str, Any], field: str, name: str, *, size: int) -> bytes:
    value = document.get(field)
    try:
        if not isinstance(value, str):
            raise ValueError
        raw = bytes.fromhex(value)
    except ValueError:
        raise SealError(name, f"damaged bundle: field '{field}' is not hexadecimal") from None
    if len(raw) != size:
        raise SealError(name, f"damaged bundle: field '{field}' has the wrong length")
    return raw


def _rule_set(
    document: dict[str, Any], subkeys: BundleKeys, mac: bytes, name: str, day: str
) -> SealedRuleSet:
    """Check the structure of an authenticated bundle and build the matcher. The MAC already
    rules out changes; these checks give a clear message for a bundle from a faulty tool."""
    from intercept.rules.ruleschema import CATEGORY_PATTERN, LANGUAGE_PATTERN, RULE_ID_PATTERN

    def damaged(what: str) -> SealError:
        return SealError(name, f"damaged bundle: {what}")

    extra = sorted(set(document) - {*_FIELDS, "mac"})
    if extra:
        raise damaged(f"{len(extra)} unknown field(s) (names not shown)")
    lists_raw, rules_raw = document.get("lists"), document.get("rules")
    prefixes_raw, keys_raw = document.get("prefixes"), document.get("keys")
    if not (isinstance(lists_raw, list) and isinstance(rules_raw, list)):
        raise damaged("'lists' and 'rules' must be lists")
    if not (isinstance(prefixes_raw, list) and isinstance(keys_raw, dict)):
        raise damaged("'prefixes' must be a list and 'keys' a mapping")
    lists: list[ListInfo] = []
    for number, item in enumerate(lists_raw):
        values = (
            [item.get(k) for k in ("name", "source", "updated")] if isinstance(item, dict) else []
        )
        texts = [v for v in values if isinstance(v, str)]
        if len(texts) != 3:
            raise damaged(f"lists[{number}] must have text 'name', 'source' and 'updated'")
        lists.append(ListInfo(*texts))

    patterns = {
        field: re.compile(pattern).match
        for field, pattern in (
            ("id", RULE_ID_PATTERN), ("category", CATEGORY_PATTERN), ("language", LANGUAGE_PATTERN)
        )
    }  # fmt: skip
    actions = {action.value: action for action in Action}
    specs: list[RuleSpec] = []
    groups: list[int] = []
    index: list[int] = []
    seen: set[str] = set()
    for number, item in enumerate(rules_raw):
        if not isinstance(item, dict) or set(item) != set(_RULE_FIELDS):
            raise damaged(f"rules[{number}] must have exactly the fields {', '.join(_RULE_FIELDS)}")
        for field, valid in patterns.items():
            if not isinstance(item[field], str) or not valid(item[field]):
                raise damaged(f"rules[{number}].{field} is not valid")
        action = actions.get(item["action"]) if isinstance(item["action"], str) else None
        if action is None or item["match"] != "word":
            raise damaged(f"rules[{number}] has an unknown action or a match other than word")
        all_of, expires = item["all_of"], item["expires"]
        if type(all_of) is not int or not 0 <= all_of <= 254:
            raise damaged(f"rules[{number}].all_of must be a number of groups")
        if not (expires is None or isinstance(expires, str)) or not isinstance(item["list"], str):
            raise damaged(f"rules[{number}].expires or .list is not valid")
        if item["id"] in seen:
            raise damaged(f"rule id {item['id']} appears twice")
        seen.add(item["id"])
        if expires is not None and day >= expires:
            index.append(-1)  # expired since sealing: left out, as the compiler would
            continue
        index.append(len(specs))
        groups.append(all_of)
        specs.append(
            RuleSpec(
                id=item["id"],
                category=item["category"],
                action=action,
                language=item["language"],
                match=MatchMode.WORD,
                file=name,
                list_name=item["list"],
                expires=expires,
            )
        )

    try:
        prefixes = frozenset(bytes.fromhex(p) for p in prefixes_raw)
        keys = {bytes.fromhex(k): bytes.fromhex(v) for k, v in keys_raw.items()}
    except (TypeError, ValueError):
        raise damaged("a prefix or key is not hexadecimal") from None
    if any(len(p) != ID_BYTES for p in prefixes) or any(len(k) != ID_BYTES for k in keys):
        raise damaged(f"a prefix or key id is not {ID_BYTES} bytes")

    order = sorted(range(len(specs)), key=lambda r: (-specs[r].action.severity, specs[r].id))
    rank = [0] * len(specs)
    for position, rule in enumerate(order):
        rank[rule] = position
    version = hashlib.sha256(mac + "\n".join(spec.id for spec in specs).encode())
    return SealedRuleSet(
        rules=tuple(specs),
        lists=tuple(lists),
        version=version.hexdigest()[:16],
        _automaton=ahocorasick.Automaton(ahocorasick.STORE_INTS),
        _single=array("q"),
        _shared=(),
        _counts={},
        _groups=tuple(groups),
        _rank=tuple(rank),
        _keys=keys,
        _prefixes=prefixes,
        _lookup=KeyedHash(subkeys.lookup),
        _payload_key=subkeys.payload,
        _index=tuple(index),
    )


# --- the command ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SealReport:
    """What `seal_files` did: the bundle written and how it was verified."""

    result: SealResult
    output: Path
    files: int
    compared: int  # example queries decided alike by the bundle and the rules


def _decisions(rules: RuleSet, query: str) -> list[tuple[str, str]]:
    return [(m.rule_id, m.action.value) for m in rules.match_all(query)]


def verify_bundle(plain: RuleSet, sealed: RuleSet, queries: Iterable[str]) -> tuple[int, list[str]]:
    """Compare every matching rule, decisive first, of `plain` and `sealed` on `queries`.
    Returns (queries compared, the queries where they differ)."""
    compared, differ = 0, []
    for query in queries:
        compared += 1
        if _decisions(plain, query) != _decisions(sealed, query):
            differ.append(query)
    return compared, differ


def seal_files(
    paths: Sequence[str | os.PathLike[str]],
    key_file: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    skip_unsealable: bool = False,
    today: str | None = None,
) -> SealReport:
    """`intercept seal`: read and compile the rule files, seal them, check that the bundle
    decides like the rules on every example of every rule, then write it (atomically, so a
    server reloading it never reads half a file). Refuses to replace a file that is not a
    sealed bundle (a rule file given as `-o` by mistake)."""
    from intercept.rules.rulefile import read_rules

    target = Path(output)
    if target.exists() and not is_sealed_bundle(target):
        raise SealError(output, "exists and is not a sealed bundle: refusing to replace it")
    secret = read_key_file(key_file)
    specs, lists = read_rules(paths)
    day = today or _today()
    result = seal_rules(specs, lists, secret, skip_unsealable=skip_unsealable, today=day)
    plain = compile_rules(result.rules, lists, today=day)
    sealed = open_bundle(result.text.encode(), secret, name=os.fspath(output), today=day)
    examples = [q for spec in specs for q in (*spec.examples_match, *spec.examples_no_match)]
    compared, differ = verify_bundle(plain, sealed, examples)
    if differ:  # a fault in Intercept, never in the rules; the message names no query
        raise SealError(
            output,
            f"the sealed rules decide {len(differ)} example(s) differently from the rules: "
            "nothing written (please report this)",
        )
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(result.text, encoding="utf-8")
        os.replace(temporary, target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise SealError(output, f"cannot write bundle: {error.strerror or error}") from None
    return SealReport(result, target, len({spec.file for spec in specs}), compared)


def check_bundle(
    path: str | os.PathLike[str], key_file: str | os.PathLike[str] | None
) -> SealedRuleSet:
    """`intercept check` on a bundle: load it (format, key, MAC, structure). Its examples
    were left out when it was sealed, so they cannot be run here."""
    return load_sealed(path, key_file)
