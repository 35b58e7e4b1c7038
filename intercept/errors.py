"""Intercept's exceptions: one root, few subclasses, builtins elsewhere."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["InterceptError", "Problem", "RuleError"]


class InterceptError(Exception):
    """Root of every error Intercept raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a rule set, located for the curator who must fix it."""

    file: str
    line: int
    rule_id: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        rule = f" rule {self.rule_id}:" if self.rule_id else ""
        return f"{where}:{rule} {self.message}"


class RuleError(InterceptError, ValueError):
    """A rule set was refused. `problems` lists every error found, in file order.

    A rule set with any problem is refused as a whole; nothing of it is loaded.
    """

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        count = len(self.problems)
        head = f"rule set refused: {count} problem{'s' if count != 1 else ''}"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))
