"""Intercept: deterrence-messaging and survey-intercept middleware for search engines.

The rule engine's public API::

    rules = intercept.load_rules("rules/")
    match = rules.match("some query")        # Match | None
    report = rules.explain("some query")     # stages, hits, decision
    sealed = intercept.load_rules("bundle.json", key_file="bundle.key")   # a sealed bundle
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from intercept.errors import InterceptError, Problem, RuleError
from intercept.rules.normalize import Normalized, normalize
from intercept.rules.ruleset import Explanation, Hit, Match, RuleSet, compile_rules
from intercept.rules.rulespec import Action, ListInfo, MatchMode, RuleSpec

__all__ = [
    "Action",
    "Explanation",
    "Hit",
    "InterceptError",
    "ListInfo",
    "Match",
    "MatchMode",
    "Normalized",
    "Problem",
    "RuleError",
    "RuleSet",
    "RuleSpec",
    "__version__",
    "compile_rules",
    "load_rules",
    "normalize",
]

__version__ = "0.2.0"  # the distribution's version too (pyproject.toml reads it)


def load_rules(
    path: str | Path | Iterable[str | Path], key_file: str | Path | None = None
) -> RuleSet:
    """Read, validate and compile rule files (a file, a folder read recursively, or several).

    A path that is a sealed bundle (`intercept seal`; recognized by its `format` marker) is
    loaded on its own with the secret in `key_file`, giving a `SealedRuleSet` that decides
    like the rules it was sealed from; `key_file` is not needed for plain rule files.

    Raises `RuleError` listing every problem found, with file, line and rule id; a rule set
    with any problem is refused whole. For a bundle (no key file, a different key, a changed
    or damaged file) the `RuleError` is an `intercept.rules.seal.SealError`.
    """
    from intercept.rules.seal import find_bundle, load_sealed

    bundle, paths = find_bundle(path)
    if bundle is not None:
        return load_sealed(bundle, key_file)
    from intercept.rules.rulefile import read_rules  # pydantic is only needed to read files

    specs, lists = read_rules(paths)
    return compile_rules(specs, lists)
