"""Generated detection corpus: disguised variants of dictionary words used as rules, and benign
dictionary queries with Scunthorpe and joined-word traps.

`tests/test_detection.py` asserts on it; `python -m tests.detection_corpus` prints the per-class
table that the README reports. Needs a word list (Debian's `wamerican`, which `.ci/run`
installs); everything else is generated from a fixed seed.
"""

from __future__ import annotations

import random
import sys
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from intercept.normalize import alternatives
from intercept.ruleset import RuleSet, compile_rules
from intercept.rulespec import Action, RuleSpec

WORDLIST = Path("/usr/share/dict/american-english")
SEED = 20261129

_FULLWIDTH = {c: chr(ord(c) + 0xFEE0) for c in "abcdefghijklmnopqrstuvwxyz"}
_BOLD = {c: chr(0x1D41A + i) for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}
_DOUBLE_STRUCK = {c: chr(0x1D552 + i) for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}
_CIRCLED = {c: chr(0x24D0 + i) for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}
_SCRIPT_BOLD = {c: chr(0x1D4EA + i) for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}
_LOOKALIKE = {
    "a": "аα", "c": "сϲ", "e": "е", "i": "іι", "o": "оο", "p": "рρ", "x": "хχ", "y": "у",
    "k": "κк", "t": "τт", "n": "η", "s": "ѕ", "j": "ј", "h": "һн", "m": "м", "b": "в",
    "v": "ν", "u": "υ",
}  # fmt: skip
_LEET = {
    "a": "4@", "e": "3", "i": "1!|", "l": "1|", "o": "0", "s": "5$", "t": "7+", "b": "8",
    "g": "9",
}  # fmt: skip
_INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u202c", "\ufe0f"]
_SEPARATORS = [" ", ".", "-", "_", "*", " / ", "  ", "|"]
_MARKS = ["\u0301", "\u0300", "\u0308", "\u0302", "\u0327", "\u030c", "\u0303"]

Disguise = Callable[[random.Random, str], str]


def _map_some(table: dict[str, str], share: float) -> Disguise:
    def apply(rnd: random.Random, text: str) -> str:
        out = [rnd.choice(table[c]) if c in table and rnd.random() < share else c for c in text]
        return "".join(out)

    return apply


def _map_all(table: dict[str, str]) -> Disguise:
    return lambda rnd, text: "".join(table.get(c, c) for c in text)


def _case(rnd: random.Random, text: str) -> str:
    return "".join(c.upper() if rnd.random() < 0.5 else c for c in text)


def _diacritics(rnd: random.Random, text: str) -> str:
    out = []
    for c in text:
        out.append(c)
        if c.isalpha() and rnd.random() < 0.5:
            out.append(rnd.choice(_MARKS))
    composed = unicodedata.normalize("NFC", "".join(out))
    return composed if rnd.random() < 0.5 else unicodedata.normalize("NFD", composed)


def _invisible(rnd: random.Random, text: str) -> str:
    return "".join(c + (rnd.choice(_INVISIBLE) if rnd.random() < 0.5 else "") for c in text)


def _leet(rnd: random.Random, text: str) -> str:
    letters = [i for i, c in enumerate(text) if c in _LEET]
    out = list(text)
    for i in rnd.sample(letters, k=max(1, len(letters) // 2)) if letters else []:
        out[i] = rnd.choice(_LEET[out[i]])
    return "".join(out)


def _spelled(rnd: random.Random, text: str) -> str:
    # a symbol that stands for a letter in `text` is not also its separator: "4|r|||l" would
    # be unreadable to people as well
    sep = rnd.choice([s for s in _SEPARATORS if not set(s) & set(text)])
    return sep.join(c for c in text if c != " ")


def _stretched(rnd: random.Random, text: str) -> str:
    if rnd.random() < 0.5:
        return "".join(c * 2 if c != " " else c for c in text)
    i = rnd.choice([i for i, c in enumerate(text) if c != " "])
    return text[:i] + text[i] * rnd.randint(3, 6) + text[i + 1 :]


def _joined(rnd: random.Random, text: str) -> str:
    return text.replace(" ", rnd.choice(["", "-", "_", ".", "   ", "+", "~"]))


def _then(*steps: Disguise) -> Disguise:
    def apply(rnd: random.Random, text: str) -> str:
        for step in steps:
            text = step(rnd, text)
        return text

    return apply


CLASSES: dict[str, Disguise] = {
    "case": _case,
    "fullwidth": _map_all(_FULLWIDTH),
    "math bold / script / double-struck": lambda rnd, t: _map_all(
        rnd.choice([_BOLD, _SCRIPT_BOLD, _DOUBLE_STRUCK])
    )(rnd, t),
    "circled": _map_all(_CIRCLED),
    "diacritics": _diacritics,
    "lookalikes (Cyrillic/Greek)": _map_some(_LOOKALIKE, 0.6),
    "invisible characters": _invisible,
    "leetspeak": _leet,
    "spelled out": _spelled,
    "stretched": _stretched,
    "phrase joined": _joined,
    "leetspeak + separators": _then(_leet, _spelled),
    "lookalikes + invisible": _then(_map_some(_LOOKALIKE, 0.6), _invisible),
    "case + diacritics + stretched": _then(_stretched, _diacritics, _case),
}


@dataclass(frozen=True, slots=True)
class Corpus:
    rules: list[RuleSpec]
    variants: dict[str, list[tuple[str, str]]]  # class -> [(query, rule id)]
    benign: list[str]
    scunthorpe: list[str]
    joined_traps: list[str]


def dictionary() -> list[str]:
    words = WORDLIST.read_text(encoding="utf-8").split()
    return sorted({w.lower() for w in words if w.isalpha() and w.isascii()})


def _forms(word: str) -> tuple[str, ...]:
    return alternatives(word)


def build(
    rule_count: int = 2000, variants_per_class: int = 400, benign_count: int = 20000
) -> Corpus:
    rnd = random.Random(SEED)
    words = dictionary()
    candidates = [w for w in words if 4 <= len(w) <= 12]
    chosen = rnd.sample(candidates, rule_count)
    singles, pairs = chosen[: rule_count * 3 // 4], chosen[rule_count * 3 // 4 :]
    phrases = singles + [f"{a} {b}" for a, b in zip(pairs[::2], pairs[1::2], strict=False)]
    rules = [
        RuleSpec(f"DET-{i:05d}", "detection", Action.BLOCK, "en", terms=(p,))
        for i, p in enumerate(phrases)
    ]
    rule_words = {w for p in phrases for w in p.split()}
    rule_forms = {_forms(w) for w in rule_words}
    benign_words = [w for w in words if w not in rule_words and _forms(w) not in rule_forms]
    context = [w for w in benign_words if len(w) >= 3]

    variants: dict[str, list[tuple[str, str]]] = {}
    multi = [r for r in rules if " " in r.terms[0]]
    for name, disguise in CLASSES.items():
        pool = multi if name == "phrase joined" else rules
        rows = []
        for _ in range(variants_per_class):
            rule = rnd.choice(pool)
            variant = disguise(rnd, rule.terms[0])
            left, right = rnd.choice(context), rnd.choice(context)
            shape = rnd.randrange(4)
            query = [
                variant,
                f"{left} {variant}",
                f"{variant} {right}",
                f"{left} {variant} {right}",
            ][shape]
            rows.append((query, rule.id))
        variants[name] = rows

    benign = [
        " ".join(rnd.choice(benign_words) for _ in range(rnd.randint(1, 4)))
        for _ in range(benign_count)
    ]
    single = sorted(w for p in phrases for w in [p] if " " not in p)
    scunthorpe = sorted({w for w in benign_words for r in _scunthorpe_hosts(w, set(single)) if r})
    joined = sorted(_joined_traps(single, set(benign_words)))
    return Corpus(rules, variants, benign, scunthorpe, joined)


def _scunthorpe_hosts(word: str, rules: set[str]) -> Iterator[str]:
    """Rule words that stand inside `word` (not as the whole word)."""
    for size in range(4, len(word)):
        for start in range(len(word) - size + 1):
            part = word[start : start + size]
            if part in rules:
                yield part


def _joined_traps(rules: list[str], benign: set[str]) -> Iterator[str]:
    """Two ordinary words whose letters, joined, spell a rule word ("pic at" for "picat"), and
    the same with letters on either side ("epic attack")."""
    for rule in rules:
        for cut in range(2, len(rule) - 1):
            left, right = rule[:cut], rule[cut:]
            if left in benign and right in benign:
                yield f"{left} {right}"
            for a in ("s", "e", "a"):
                if a + left in benign and right in benign:
                    yield f"{a}{left} {right}"


@dataclass(frozen=True, slots=True)
class Result:
    recall: dict[str, tuple[int, int]]  # class -> (found, total)
    false_positives: dict[str, list[tuple[str, str]]]  # set -> [(query, rule id)]
    benign_counts: dict[str, int]


def evaluate(corpus: Corpus) -> Result:
    rules: RuleSet = compile_rules(corpus.rules)
    recall = {}
    for name, rows in corpus.variants.items():
        found = sum(rule_id in {m.rule_id for m in rules.match_all(q)} for q, rule_id in rows)
        recall[name] = (found, len(rows))
    sets = {"dictionary queries": corpus.benign, "Scunthorpe traps": corpus.scunthorpe,
            "joined-word traps": corpus.joined_traps}  # fmt: skip
    false_positives: dict[str, list[tuple[str, str]]] = {}
    for name, queries in sets.items():
        false_positives[name] = [(q, m.rule_id) for q in queries if (m := rules.match(q))]
    return Result(recall, false_positives, {k: len(v) for k, v in sets.items()})


def markdown(result: Result) -> str:
    lines = ["| evasion class | variants | matched | recall |", "|---|---:|---:|---:|"]
    for name, (found, total) in result.recall.items():
        lines.append(f"| {name} | {total} | {found} | {found / total:.1%} |")
    lines += ["", "| benign set | queries | false positives |", "|---|---:|---:|"]
    for name, count in result.benign_counts.items():
        lines.append(f"| {name} | {count} | {len(result.false_positives[name])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if not WORDLIST.exists():
        sys.exit(f"{WORDLIST} is missing: apt-get install wamerican")
    print(markdown(evaluate(build())))
