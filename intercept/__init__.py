"""Intercept: deterrence-messaging and survey-intercept middleware for search engines.

The rule engine's public API::

    rules = intercept.load_rules("rules/")
    match = rules.match("some query")        # Match | None
    report = rules.explain("some query")     # stages, hits, decision
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from intercept.errors import InterceptError, Problem, RuleError
from intercept.normalize import Normalized, normalize
from intercept.ruleset import Explanation, Hit, Match, RuleSet, compile_rules
from intercept.rulespec import Action, ListInfo, MatchMode, RuleSpec

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

__version__ = "0.1.0"


def load_rules(path: str | Path | Iterable[str | Path]) -> RuleSet:
    """Read, validate and compile rule files (a file, a folder read recursively, or several).

    Raises `RuleError` listing every problem found, with file, line and rule id; a rule set
    with any problem is refused whole.
    """
    from intercept.rulefile import read_rules  # pydantic is only needed to read files

    specs, lists = read_rules(path)
    return compile_rules(specs, lists)
