"""Which kind of route each ledger row comes from, so that rates divide like by like.

The ledger counts requests per route name (`searches`, by `route`), and a route's name is the
operator's choice; its kind (`search` or `autocomplete`, `intercept.config.Route.kind`) is in
the configuration only. A front-end may ask for suggestions on every keystroke, so one
search typed on a page with autocomplete is many autocomplete requests: counted together with
searches, they would swell the denominator of the intervention rate by however many keys
searchers press. A report therefore divides by searches on search routes only, and counts
autocomplete requests apart.

- A route's kind comes from the configuration the report is given (`intercept report
  --config`), else from the default routes (`intercept.config.DEFAULT_ROUTES`: `search`;
  `autocomplete`, `autocompleter`, `suggest`, `complete`).
- A route name the ledger holds that neither knows is of kind `unknown`: its requests go to
  no rate, and while any is in the range no intervention rate is computed at all (its
  interventions cannot be told from a search route's, so a rate would divide them by too
  few searches); the report names the routes and says to pass `--config`.
- An intervention's kind needs no configuration: one on an autocomplete route answers an
  empty suggestion list and shows no page, so it carries the variant `NO_PAGE`
  (`intercept.research.ledger.NO_PAGE`); every page shown (a block or warn page, or its
  JSON answer to an API client) carries a message variant. Shadow hits (action `shadow`,
  variant `NO_PAGE` too) are neither: they are listed by `intercept report --shadow`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

from intercept.config import DEFAULT_ROUTES
from intercept.research.ledger import NO_PAGE

__all__ = [
    "AUTOCOMPLETE",
    "DEFAULT_KINDS",
    "SEARCH",
    "SHADOW_ACTION",
    "UNKNOWN",
    "Kind",
    "intervention_kind",
    "route_kind",
]

Kind = Literal["search", "autocomplete", "unknown"]
SEARCH: Final = "search"
AUTOCOMPLETE: Final = "autocomplete"
UNKNOWN: Final = "unknown"
SHADOW_ACTION: Final = "shadow"

#: The default routes' names and kinds: what a report assumes without a configuration.
DEFAULT_KINDS: Final[Mapping[str, str]] = {route.name: route.kind for route in DEFAULT_ROUTES}


def route_kind(route: str, kinds: Mapping[str, str]) -> Kind:
    """The kind of the route named `route` in `kinds` (route name: kind)."""
    kind = kinds.get(route)
    if kind == SEARCH:
        return "search"
    if kind == AUTOCOMPLETE:
        return "autocomplete"
    return "unknown"


def intervention_kind(action: str, variant: str) -> Kind | None:
    """The kind of route an intervention with this action and variant happened on; None for
    a shadow hit, which intervenes nowhere."""
    if action == SHADOW_ACTION:
        return None
    return "autocomplete" if variant == NO_PAGE else "search"
