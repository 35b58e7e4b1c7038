"""Generated detection corpus: disguised variants of dictionary words used as rules, and benign
dictionary queries with Scunthorpe and joined-word traps.

`tests/rules/test_detection.py` asserts on it; `python -m tests.detection_corpus` prints the
per-class table that the README reports. Needs a word list (Debian's `wamerican`, which `.ci/run`
installs); everything else is generated from a fixed seed.
"""

from __future__ import annotations

import random
import re
import string
import sys
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from intercept.rules import lexicon
from intercept.rules.masks import MASKS
from intercept.rules.normalize import alternatives
from intercept.rules.ruleset import RuleSet, compile_rules
from intercept.rules.rulespec import Action, RuleSpec

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


def _doubled_once(rnd: random.Random, text: str) -> str:
    """One letter written twice ("craadle"), where the word does not have it doubled."""
    spots = [
        i for i, c in enumerate(text) if c.isalpha() and text[i - 1 : i] != c != text[i + 1 : i + 2]
    ]
    if not spots:
        return text
    i = rnd.choice(spots)
    return text[:i] + text[i] * 2 + text[i + 1 :]


def _doubled_some(rnd: random.Random, text: str) -> str:
    """Two or three letters written twice ("treeasuure")."""
    spots = [
        i for i, c in enumerate(text) if c.isalpha() and text[i - 1 : i] != c != text[i + 1 : i + 2]
    ]
    chosen = set(rnd.sample(spots, k=min(len(spots), rnd.randint(2, 3))))
    return "".join(c * 2 if i in chosen else c for i, c in enumerate(text))


def _mask_spots(word: str) -> list[int]:
    return list(range(1, len(word) - 1))  # inner letters: masks at the edges are emphasis


def _masked(count: int) -> Disguise:
    """`count` inner letters of the longest word replaced by a mask symbol, never two side
    by side ("tr*asure", "p#ssw#rd")."""

    def apply(rnd: random.Random, text: str) -> str:
        words = text.split(" ")
        longest = max(range(len(words)), key=lambda i: len(words[i]))
        word = words[longest]
        if len(_mask_spots(word)) < 2 * count:
            return text  # too short to mask (other callers than `build` pick any phrase)
        while True:
            spots = sorted(rnd.sample(_mask_spots(word), count))
            if count == 1 or spots[1] - spots[0] > 1:
                break
        mask = rnd.choice(MASKS)
        word = "".join(mask if i in spots else c for i, c in enumerate(word))
        words[longest] = word
        return " ".join(words)

    return apply


def _capital_i(rnd: random.Random, text: str) -> str:
    """Some l written as a capital I ("smaIl"), the rest in lowercase."""
    spots = [i for i, c in enumerate(text) if c == "l"]
    if not spots:
        return text
    chosen = set(rnd.sample(spots, k=rnd.randint(1, len(spots))))
    return "".join("I" if i in chosen else c for i, c in enumerate(text))


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
    "one letter doubled": _doubled_once,
    "two or three letters doubled": _doubled_some,
    "one letter masked (* # ? _ . -)": _masked(1),
    "two letters masked": _masked(2),
    "capital I for l": _capital_i,
}


def _doubled_word(variant: str, phrase: str) -> bool:
    """A letter doubled that spells an ordinary word ("willing" for "wiling"): read as that
    word, by design."""
    return any(word not in phrase.split() and lexicon.is_word(word) for word in variant.split())


def _mask_reads_otherwise(variant: str, phrase: str) -> bool:
    """A mask that another ordinary word fits as well ("t*mper": tamper, temper), or a `-`,
    `.` or `_` between two ordinary words ("pop.vers"): never read as the rule's word, by
    design (`intercept.rules.masks`)."""
    words = lexicon.words()
    targets = phrase.split()
    for chunk in variant.split():
        parts = re.split(f"[{re.escape(MASKS)}]", chunk)
        if len(parts) == 1:
            continue
        if not re.search(r"[*#?]", chunk) and all(len(p) >= 3 and p in words for p in parts):
            return True
        pattern = re.compile("[a-z]".join(re.escape(part) for part in parts))
        fits = [w for w in targets if pattern.fullmatch(w)]
        others = {f for f in _fills(parts) if f in words} - set(fits)
        if others:
            return True
    return False


def _fills(parts: list[str]) -> set[str]:
    out = {parts[0]}
    for part in parts[1:]:
        out = {head + letter + part for head in out for letter in string.ascii_lowercase}
    return out


# variants that do not read as the rule by design, per class: reported apart from recall
EXCUSED: dict[str, Callable[[str, str], bool]] = {
    "one letter doubled": _doubled_word,
    "two or three letters doubled": _doubled_word,
    "one letter masked (* # ? _ . -)": _mask_reads_otherwise,
    "two letters masked": _mask_reads_otherwise,
}

# the rules a class can disguise: a masked word keeps at least 5 letters (intercept.rules.masks)
_ELIGIBLE: dict[str, Callable[[str], bool]] = {
    "one letter masked (* # ? _ . -)": lambda phrase: max(map(len, phrase.split())) >= 6,
    "two letters masked": lambda phrase: max(map(len, phrase.split())) >= 8,
    "capital I for l": lambda phrase: "l" in phrase,
}


@dataclass(frozen=True, slots=True)
class Corpus:
    rules: list[RuleSpec]
    variants: dict[str, list[tuple[str, str]]]  # class -> [(query, rule id)]
    excused: dict[str, int]  # class -> variants left out of `variants` (see `EXCUSED`)
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
    excused: dict[str, int] = {}
    multi = [r for r in rules if " " in r.terms[0]]
    for name, disguise in CLASSES.items():
        pool = multi if name == "phrase joined" else rules
        if name in _ELIGIBLE:
            pool = [rule for rule in pool if _ELIGIBLE[name](rule.terms[0])]
        rows: list[tuple[str, str]] = []
        excused[name] = 0
        while len(rows) < variants_per_class:
            rule = rnd.choice(pool)
            variant = disguise(rnd, rule.terms[0])
            if name in EXCUSED and EXCUSED[name](variant, rule.terms[0]):
                excused[name] += 1
                continue
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
    return Corpus(rules, variants, excused, benign, scunthorpe, joined)


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
    excused: dict[str, int]  # class -> variants generated and left out by design
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
    counts = {k: len(v) for k, v in sets.items()}
    return Result(recall, corpus.excused, false_positives, counts)


FREQUENT_LANGUAGES = lexicon.LANGUAGES  # 14 languages
FREQUENT_PER_LANGUAGE = 25_000


@dataclass(frozen=True, slots=True)
class Frequent:
    """The frequent-word benign set: every word as a one-word query."""

    words: int  # distinct words asked
    languages: int
    false_positives: list[tuple[str, str, str]]  # (word, language, rule id)
    collisions: list[tuple[str, str, str]]  # diacritics folded onto a rule word: reported


def frequent_words(rules: RuleSet, phrases: set[str]) -> Frequent:
    """The top `FREQUENT_PER_LANGUAGE` words of each language of wordfreq 3.1.1 (needs the
    test extra `wordfreq`), each asked alone. A word written exactly as a rule word ("hand"
    in German and English), alone or with an ending after an apostrophe or hyphen ("club's"),
    is the rule's word, not a false positive: left out. A word that
    folds onto a rule word but is written otherwise ("für" for a rule "fur") is a diacritic
    collision: reported apart, as `intercept check` reports it to curators."""
    import wordfreq  # type: ignore[import-not-found, unused-ignore]

    asked: set[str] = set()
    false_positives, collisions = [], []
    for language in FREQUENT_LANGUAGES:
        for word in wordfreq.top_n_list(language, FREQUENT_PER_LANGUAGE, wordlist="best"):
            if word in asked or word in phrases:
                continue
            asked.add(word)
            match = rules.match(word)
            if match is None:
                continue
            if set(re.split(r"\W+", word.casefold())) & phrases:
                continue  # the rule's own word with an ending: "club's"
            plain = " ".join(word.casefold().split())
            if unicodedata.normalize("NFKD", plain).isascii() and plain.isascii():
                false_positives.append((word, language, match.rule_id))
            else:
                collisions.append((word, language, match.rule_id))
    return Frequent(len(asked), len(FREQUENT_LANGUAGES), false_positives, collisions)


def markdown(result: Result) -> str:
    lines = [
        "| evasion class | variants | matched | recall | left out: read as another word |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (found, total) in result.recall.items():
        left = result.excused.get(name, 0)
        shown = f"{left} ({left / (left + total):.1%})" if name in EXCUSED else ""
        lines.append(f"| {name} | {total} | {found} | {found / total:.1%} | {shown} |")
    lines += ["", "| benign set | queries | false positives |", "|---|---:|---:|"]
    for name, count in result.benign_counts.items():
        lines.append(f"| {name} | {count} | {len(result.false_positives[name])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if not WORDLIST.exists():
        sys.exit(f"{WORDLIST} is missing: apt-get install wamerican")
    corpus = build()
    print(markdown(evaluate(corpus)))
    phrases = {rule.terms[0] for rule in corpus.rules}
    frequent = frequent_words(compile_rules(corpus.rules), phrases)
    print(
        f"\nfrequent words: {frequent.words} in {frequent.languages} languages, "
        f"{len(frequent.false_positives)} false positives {frequent.false_positives[:10]}, "
        f"{len(frequent.collisions)} diacritic collisions {frequent.collisions[:10]}"
    )
