"""Sealed against plaintext rules: compile, seal and load time, bundle size, memory, matching.

Usage: python bench/seal_bench.py [--rules 100000] [--queries 200000] [--match-share 0.1]

The rules and queries are `intercept bench`'s (synthetic pseudo-words; `word` rules, a tenth
with `all_of` or `unless`; a share of the queries hold a disguised rule phrase). One process,
one core: the plaintext `RuleSet` and the `SealedRuleSet` of the same rules run the same
queries, interleaved in three rounds, best round each; decisions are compared for every query.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from intercept.curation.rulebench import _machine, _rss_mb, make_queries, make_rules  # noqa: E402
from intercept.rules.ruleset import RuleSet, compile_rules  # noqa: E402
from intercept.rules.seal import open_bundle, seal_rules  # noqa: E402


def _rate(rules: RuleSet, queries: list[str]) -> float:
    match = rules.match
    gc.collect()
    started = time.perf_counter()
    for query in queries:
        match(query)
    return len(queries) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200_000)
    parser.add_argument("--match-share", type=float, default=0.1)
    args = parser.parse_args()

    secret = bytes(range(32))
    specs = make_rules(args.rules)
    queries = make_queries(specs, args.queries, args.match_share)
    print(f"machine: {_machine()}")
    print(f"rules: {len(specs):,}, queries: {len(queries):,} ({args.match_share:.0%} disguised)")

    gc.collect()
    base = _rss_mb()
    started = time.perf_counter()
    plain = compile_rules(specs)
    compile_seconds = time.perf_counter() - started
    plain_mb = _rss_mb() - base

    started = time.perf_counter()
    result = seal_rules(specs, [], secret)
    seal_seconds = time.perf_counter() - started
    data = result.text.encode()
    del result
    gc.collect()
    base = _rss_mb()
    started = time.perf_counter()
    sealed = open_bundle(data, secret)
    load_seconds = time.perf_counter() - started
    gc.collect()
    sealed_mb = _rss_mb() - base

    print(f"plaintext compile: {compile_seconds:.2f} s, +{plain_mb:.0f} MB resident")
    print(f"seal (compile + hash + encrypt): {seal_seconds:.2f} s")
    print(f"bundle: {len(data) / 1e6:.1f} MB; load (parse + MAC + index): {load_seconds:.2f} s, "
          f"+{sealed_mb:.0f} MB resident")  # fmt: skip

    for query in queries[:1000]:  # warm caches
        plain.match(query)
        sealed.match(query)
    plain_rate = sealed_rate = 0.0
    for _ in range(3):
        plain_rate = max(plain_rate, _rate(plain, queries))
        sealed_rate = max(sealed_rate, _rate(sealed, queries))
    differ = sum(plain.match(q) != sealed.match(q) for q in queries)
    matched = sum(sealed.match(q) is not None for q in queries)
    print(f"plaintext: {plain_rate:,.0f} queries/s")
    print(f"sealed:    {sealed_rate:,.0f} queries/s ({sealed_rate / plain_rate:.2f} of plaintext)")
    print(f"decisions: {len(queries):,} compared, {differ} differ, {matched:,} matched")


if __name__ == "__main__":
    main()
