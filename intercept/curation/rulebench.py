"""`intercept bench`: compile time, memory and matching speed on synthetic rules.

Rules are made of pseudo-words built from syllables (no real vocabulary), one to three words a
phrase, a tenth of them `all_of` or with `unless`. Queries are at most 64 characters of
pseudo-words; a configurable share of them contain a rule's phrase, disguised by one of the
evasions the normalizer folds. One core, one process: run it on an otherwise idle machine and
compare ratios measured in the same run.
"""

from __future__ import annotations

import gc
import platform
import random
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

from intercept.rules.ruleset import RuleSet, compile_rules
from intercept.rules.rulespec import Action, MatchMode, RuleSpec

__all__ = ["BenchResult", "make_queries", "make_rules", "run_bench"]

_SYLLABLES = [
    "ka", "ro", "mi", "tan", "sel", "vor", "lu", "pe", "dri", "no", "zu", "bra", "ek", "il",
    "os", "um", "fa", "gri", "hol", "ste", "qua", "jen", "wix", "bo", "de", "fli", "gor",
]  # fmt: skip
_DISGUISES: list[Callable[[str], str]] = [
    lambda w: w.upper(),
    lambda w: " ".join(w),
    lambda w: ".".join(w),
    lambda w: w.replace("a", "4").replace("e", "3").replace("o", "0"),
    lambda w: "\u200b".join(w),
    lambda w: w.translate(str.maketrans("aeoc", "аеос")),  # Cyrillic lookalikes
    lambda w: w[:2] + w[1] * 3 + w[2:],
    lambda w: w.translate({ord(c): ord(c) + 0xFEE0 for c in "abcdefghijklmnopqrstuvwxyz"}),
]


def _word(rnd: random.Random) -> str:
    return "".join(rnd.choice(_SYLLABLES) for _ in range(rnd.randint(2, 4)))


def make_rules(count: int, seed: int = 1) -> list[RuleSpec]:
    """`count` synthetic rules with unique ids."""
    rnd = random.Random(seed)
    specs: list[RuleSpec] = []
    actions = [Action.BLOCK, Action.BLOCK, Action.BLOCK, Action.WARN, Action.SHADOW]
    seen: set[str] = set()
    for i in range(count):
        words = " ".join(_word(rnd) for _ in range(rnd.choice((1, 1, 2, 2, 3))))
        while words in seen:
            words = " ".join(_word(rnd) for _ in range(rnd.choice((1, 2, 2, 3, 3))))
        seen.add(words)
        kind = rnd.random()
        specs.append(
            RuleSpec(
                id=f"BENCH-{i:06d}",
                category=f"cat{i % 8}",
                action=rnd.choice(actions),
                language="en",
                match=MatchMode.WORD,
                terms=() if kind < 0.05 else (words,),
                all_of=((words,), (_word(rnd), _word(rnd))) if kind < 0.05 else (),
                unless=(f"{_word(rnd)} {words}",) if 0.05 <= kind < 0.1 else (),
            )
        )
    return specs


def make_queries(specs: list[RuleSpec], count: int, match_share: float, seed: int = 2) -> list[str]:
    """`count` queries of at most 64 characters; about `match_share` hold a disguised phrase."""
    rnd = random.Random(seed)
    with_terms = [s for s in specs if s.terms]
    queries: list[str] = []
    for _ in range(count):
        words: list[str] = []
        if with_terms and rnd.random() < match_share:
            words.append(rnd.choice(_DISGUISES)(rnd.choice(with_terms).terms[0]))
        # filler pseudo-words end in x, q or z, so they are never a rule's word (nor one
        # stretched: "wix" + "x" would read as a stretched "wix")
        for _ in range(rnd.randint(1, 6)):
            word = _word(rnd)
            filler = word + rnd.choice([end for end in ("x", "q", "z") if end != word[-1]])
            if sum(map(len, words)) + len(words) + len(filler) > 64:
                break
            words.insert(rnd.randrange(len(words) + 1), filler)
        queries.append(" ".join(words))
    return queries


@dataclass(frozen=True, slots=True)
class BenchResult:
    rules: int
    queries: int
    match_share: float
    matched: int
    compile_seconds: float
    rss_mb: float
    queries_per_second: float
    p50_us: float
    p99_us: float
    p999_us: float
    machine: str

    def as_dict(self) -> dict[str, float | int | str]:
        return {name: getattr(self, name) for name in self.__slots__}


def _rss_mb() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, Python {platform.python_version()}, {platform.system()}"


def run_bench(rules: int, queries: int, match_share: float) -> BenchResult:
    """Build, compile and measure. Memory is the resident size of this whole process."""
    specs = make_rules(rules)
    batch = make_queries(specs, queries, match_share)
    gc.collect()
    started = time.perf_counter()
    ruleset: RuleSet = compile_rules(specs)
    compile_seconds = time.perf_counter() - started
    gc.collect()
    rss = _rss_mb()

    match = ruleset.match
    for query in batch[:1000]:  # warm the fold cache and the allocator
        match(query)
    latencies: list[int] = []
    matched = 0
    clock = time.perf_counter_ns
    started = time.perf_counter()
    for query in batch:
        t0 = clock()
        found = match(query)
        latencies.append(clock() - t0)
        matched += found is not None
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] / 1000

    return BenchResult(
        rules=rules,
        queries=queries,
        match_share=match_share,
        matched=matched,
        compile_seconds=round(compile_seconds, 3),
        rss_mb=round(rss, 1),
        queries_per_second=round(queries / elapsed),
        p50_us=round(pct(0.50), 2),
        p99_us=round(pct(0.99), 2),
        p999_us=round(pct(0.999), 2),
        machine=_machine(),
    )
