"""Files that ship inside the package, so that an installed wheel runs from any folder.

The default pages (`messages/`), the demo rules and the rule schema live under
`intercept/data/`; a source checkout's top-level `messages` and `rules/demo.yaml`,
`rules/schema.json` are links to them, so there is one copy. Paths, not `importlib.resources`
traversables: the loaders read folders, and a wheel is always installed unpacked.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DATA", "DEMO_RULES", "MESSAGES", "RULE_SCHEMA"]

DATA = Path(__file__).resolve().parent / "data"
MESSAGES = DATA / "messages"  # the built-in pages: used when `messages` is not configured
DEMO_RULES = DATA / "rules" / "demo.yaml"  # synthetic rules for `intercept demo` and `init`
RULE_SCHEMA = DATA / "rules" / "schema.json"  # JSON Schema of rule files, for editors
