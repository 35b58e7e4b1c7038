"""Configuration: one YAML file, `INTERCEPT_*` environment overrides, then command-line flags.

Precedence, lowest first: built-in defaults, the file given with `--config` (or
`$INTERCEPT_CONFIG`), environment variables, flags. A nested key is reached with a double
underscore: `INTERCEPT_TIMEOUTS__CONNECT=2`. Every value is validated; an error names the key,
the bad value and what is allowed.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import logging
import os
import re
from collections.abc import Mapping
from datetime import date
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from intercept.errors import InterceptError

__all__ = [
    "DEFAULT_CONFIG_YAML",
    "Config",
    "ConfigError",
    "Route",
    "load_config",
]

ENV_PREFIX = "INTERCEPT_"
_HOST_PORT = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+):[0-9]{1,5}$")


class ConfigError(InterceptError, ValueError):
    """The configuration cannot be used; the message names the key and what is allowed."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Route(_Model):
    """Where searches arrive and where their query lives."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    # whose bodies are searched; None: every method's (Werkzeug, for one, reads a PUT or
    # PATCH form as it reads a POST one). Query strings are searched for every method.
    methods: (
        tuple[Literal["GET", "POST", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"], ...] | None
    ) = None
    path: str | None = Field(default=None, pattern=r"^/")
    path_regex: str | None = None
    params: tuple[str, ...] = ()
    form_fields: tuple[str, ...] = ()
    json_pointers: tuple[str, ...] = ()
    kind: Literal["search", "autocomplete"] = "search"
    suggest_format: Literal["json-list", "opensearch"] = "opensearch"
    # how an intervention is answered: `auto`, a page unless the request's Accept names
    # JSON first (an API client); `json`, always JSON (an API route)
    answer: Literal["auto", "json"] = "auto"

    @field_validator("path_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"not a valid regular expression: {error}") from None
        return value

    @field_validator("json_pointers")
    @classmethod
    def _pointers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pointer in value:
            if pointer and not pointer.startswith("/"):
                raise ValueError(f"a JSON pointer starts with '/' (got {pointer!r})")
        return value

    @model_validator(mode="after")
    def _one_path(self) -> Route:
        if (self.path is None) == (self.path_regex is None):
            raise ValueError(f"route {self.name}: set exactly one of 'path' or 'path_regex'")
        return self


_SEARCH_PARAMS = ("q", "query", "s", "term")

DEFAULT_ROUTES: tuple[Route, ...] = (
    Route(name="search", path="/search", params=_SEARCH_PARAMS, form_fields=_SEARCH_PARAMS),
    Route(name="autocomplete", path="/autocomplete", methods=("GET",), params=("q",),
          kind="autocomplete", suggest_format="json-list"),
    Route(name="autocompleter", path="/autocompleter", params=("q",), form_fields=("q",),
          kind="autocomplete", suggest_format="opensearch"),
    Route(name="suggest", path="/suggest", methods=("GET",), params=("q",),
          kind="autocomplete", suggest_format="opensearch"),
    Route(name="complete", path="/complete/search", methods=("GET",), params=("q",),
          kind="autocomplete", suggest_format="opensearch"),
)  # fmt: skip


class Timeouts(_Model):
    """Seconds to wait for the upstream: a free slot in the upstream pool, connecting, the
    response head, and each body read."""

    pool: float = Field(default=2.0, gt=0)
    connect: float = Field(default=5.0, gt=0)
    header: float = Field(default=30.0, gt=0)
    read_idle: float = Field(default=60.0, gt=0)
    # clients, on both listeners: a complete request head, counted from the connection's
    # start or the head's first byte (slowloris); the next request on an idle kept-alive
    # connection (above the 60 s nginx keeps idle upstream connections, so that a proxy in
    # front does not reuse one that Intercept is closing)
    client_header: float = Field(default=10.0, gt=0, le=300)
    keepalive: float = Field(default=75.0, gt=0, le=3600)


class UpstreamPoolSettings(_Model):
    """Requests relayed to the upstream at once (each holds one connection), and how many of
    those slots only search routes may use, so slow other paths cannot starve searches."""

    size: int = Field(default=256, ge=2, le=65536)
    search_reserved: int = Field(default=64, ge=0)

    @model_validator(mode="after")
    def _reserve_below_size(self) -> Self:
        if self.search_reserved >= self.size:
            raise ValueError("search_reserved must be below size")
        return self


class Limits(_Model):
    """Largest accepted request parts, in bytes or characters (answered 414, 431, 413)."""

    request_target: int = Field(default=8190, ge=256, le=65536)
    headers: int = Field(default=32768, ge=1024, le=1048576)
    query: int = Field(default=2048, ge=16)
    body: int = Field(default=65536, ge=1024)
    # open client connections per process; at the cap a new one closes the oldest idle one,
    # or is answered 503 (intercept.server.connections). None: derived from the file limit
    connections: int | None = Field(default=None, ge=1)
    admin_connections: int = Field(default=64, ge=1)  # the admin listener's own budget


class Forwarded(_Model):
    """Headers added to requests sent upstream."""

    x_forwarded_for: bool = True
    x_forwarded_proto: bool = True
    x_forwarded_host: bool = True
    via: bool = True


def _check_weights(value: dict[str, float]) -> dict[str, float]:
    if not value or any(w < 0 for w in value.values()) or not any(value.values()):
        raise ValueError("needs at least one variant with a positive weight")
    if "none" in value:  # the ledger's mark of "no page shown" (autocomplete, shadow)
        raise ValueError("'none' is reserved: it marks counts where no page was shown")
    return value


class Variants(_Model):
    """Which message variant a page shows: random by weight per request, or one per day."""

    mode: Literal["weights", "daily"] = "weights"
    weights: dict[str, float] = Field(
        default_factory=lambda: {"harm": 1.0, "legal": 1.0, "help": 1.0, "neutral": 1.0}
    )
    control: str = "neutral"  # what `intercept report` compares every other variant with

    @model_validator(mode="after")
    def _control_is_a_variant(self) -> Variants:
        if "control" in self.model_fields_set and self.control not in self.weights:
            raise ValueError(
                f"control: {self.control!r} is not one of the variants "
                f"({', '.join(sorted(self.weights))})"
            )
        return self

    @field_validator("weights")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_weights(value)


class Experiment(_Model):
    """A message experiment: from `start` to `end` (UTC days, both included) the variants are
    drawn with these `weights` (instead of `variants.weights`), and `intercept report
    --experiment NAME` compares them with `control` over exactly those days. Its `design`
    (a fingerprint of window, weights and control) is recorded with the counts, so a design
    changed mid-way under the same name is found, not mixed in."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    start: date
    end: date
    weights: dict[str, float]
    control: str
    mode: Literal["weights", "daily"] = "weights"  # as `variants.mode`

    @field_validator("weights")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_weights(value)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if self.control not in self.weights:
            raise ValueError(f"control: {self.control!r} is not one of its variants")
        return self

    @property
    def design(self) -> str:
        """12 hex digits naming the window, weights and control (not the name)."""
        shape = {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "weights": dict(sorted(self.weights.items())),
            "control": self.control,
            "mode": self.mode,
        }
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:12]


_SLUG = r"^[a-z0-9][a-z0-9_-]{0,31}$"
_LANGUAGE = r"^[a-z]{2,3}$"
SurveyText = dict[
    Annotated[str, StringConstraints(pattern=_LANGUAGE)],
    Annotated[str, StringConstraints(min_length=1, max_length=200)],
]


_Ided = TypeVar("_Ided", "SurveyOption", "SurveyQuestion")


def _distinct_ids(value: tuple[_Ided, ...], what: str) -> tuple[_Ided, ...]:
    ids = [item.id for item in value]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{what} ids repeat: {', '.join(sorted(ids))}")
    return value


class SurveyOption(_Model):
    """One answer a question offers: a label id (bounded: it becomes a metric label) and its
    text per language."""

    id: str = Field(pattern=_SLUG)
    text: SurveyText = Field(min_length=1)


class SurveyQuestion(_Model):
    """A single-choice question on the page: no free text, ever."""

    id: str = Field(pattern=_SLUG)
    text: SurveyText = Field(min_length=1)
    options: tuple[SurveyOption, ...] = Field(min_length=2, max_length=8)

    @field_validator("options")
    @classmethod
    def _distinct(cls, value: tuple[SurveyOption, ...]) -> tuple[SurveyOption, ...]:
        return _distinct_ids(value, "option")


class Survey(_Model):
    """Questions the page asks (none by default: the page stays a link to the survey), and
    how long a page's answer form may be sent (its token's life)."""

    questions: tuple[SurveyQuestion, ...] = Field(default=(), max_length=3)
    answer_ttl_seconds: int = Field(default=3600, ge=60, le=86_400)

    @field_validator("questions")
    @classmethod
    def _distinct(cls, value: tuple[SurveyQuestion, ...]) -> tuple[SurveyQuestion, ...]:
        return _distinct_ids(value, "question")


class Authz(_Model):
    """The decision service (`mode: authz`): who may describe requests to it."""

    # X-Original-* and X-Forwarded-* are read only from these addresses (the front proxies);
    # anyone else could forge them to have a search decided as another.
    trusted_proxies: tuple[IPvAnyNetwork, ...] = (
        IPv4Network("127.0.0.0/8"),
        IPv6Network("::1/128"),
    )


class LedgerSettings(_Model):
    """The research ledger: hourly aggregate counts in SQLite or PostgreSQL."""

    # sqlite:PATH (relative to the working directory), sqlite:///ABSOLUTE/PATH,
    # postgresql://user:password@host:port/database; null turns the ledger off
    url: str | None = Field(
        default="sqlite:intercept-ledger.db", pattern=r"^(sqlite:|postgres(ql)?://)"
    )
    flush_seconds: float = Field(default=5.0, gt=0, le=300)
    retention_days: int = Field(default=400, ge=1)
    # counts the last flush at shutdown cannot write (full disk, database down) go to files
    # SPOOL.<id>, replayed by the next start; null: intercept-spool.jsonl beside a SQLite
    # ledger file, or in the working directory for PostgreSQL (intercept.research.spool)
    spool: Path | None = None


class Reload(_Model):
    """Live reload of rules and messages."""

    watch: bool = True  # reload when files under `rules` or `messages` change
    poll_seconds: float = Field(default=2.0, gt=0, le=3600)


def _check_secret_file(path: Path, name: str) -> None:
    """A file that holds a secret: readable, and at least 16 characters once stripped."""
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else None
        reason = reason or type(error).__name__
        raise ValueError(f"{name} cannot be read ({reason}): {path}") from None
    if len(secret) < 16:
        raise ValueError(f"{name} must hold at least 16 characters: {path}")


class RulesFeed(_Model):
    """The signed rule feed (`intercept.server.feedpoll`): where the rules come from instead of
    `rules`, which then names `cache_dir/current`."""

    url: str = Field(pattern=r"^https?://")  # the address of `intercept feed publish`'s -o
    public_key_file: Path  # the feed.pub of `intercept feed keygen`
    poll_seconds: float = Field(default=30.0, gt=0, le=86_400)
    cache_dir: Path = Path("intercept-feed")  # verified versions; the last good one stays
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)  # per request (payload: 10x)
    max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)  # the largest payload fetched
    start_wait_seconds: float = Field(default=120.0, ge=0, le=86_400)  # nothing cached yet

    @field_validator("url")
    @classmethod
    def _no_fragment(cls, value: str) -> str:
        if "#" in value:
            raise ValueError("the feed's address has no #fragment")
        return value

    @model_validator(mode="after")
    def _readable_public_key(self) -> Self:
        try:
            text = self.public_key_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else None
            reason = reason or type(error).__name__
            raise ValueError(
                f"public_key_file cannot be read ({reason}): {self.public_key_file}"
            ) from None
        if "-----BEGIN PUBLIC KEY-----" not in text:
            raise ValueError(
                f"public_key_file is not a PEM public key (the feed.pub that `intercept feed "
                f"keygen` writes): {self.public_key_file}"
            )
        return self


class Admin(_Model):
    """The admin listener's `POST /admin/reload`: a bearer token, or the endpoint is off."""

    reload_token: str | None = Field(default=None, min_length=16)
    reload_token_file: Path | None = None

    @model_validator(mode="after")
    def _readable_token_file(self) -> Self:
        if self.reload_token_file is not None:
            _check_secret_file(self.reload_token_file, "reload_token_file")
        return self

    def token(self) -> str | None:
        """The configured token, read from its file when one is named (checked at load)."""
        if self.reload_token is not None:
            return self.reload_token
        if self.reload_token_file is not None:
            try:
                return self.reload_token_file.read_text(encoding="utf-8").strip() or None
            except (OSError, UnicodeDecodeError):
                return None  # removed since: the endpoint answers as if off
        return None


class Readiness(_Model):
    """What `/readyz` waits for besides a loaded rule set (`intercept.doors.upstream_health`)."""

    # proxy mode: 503 while the upstream fails (refused, reset, timed out), probing it
    # meanwhile so that a replica taken out sees it answer again
    upstream: bool = False
    probe_path: str = Field(default="/", pattern=r"^/[!-~]*$")  # sent as HEAD
    probe_seconds: float = Field(default=2.0, gt=0, le=300)


_Secret = Annotated[str, StringConstraints(min_length=16)]


class Warn(_Model):
    """The signed "continue to results" token of warn interstitials."""

    # one secret, or several to rotate: the first signs, every one verifies (see `secrets`)
    secret: _Secret | tuple[_Secret, ...] | None = None
    secret_file: Path | None = None  # one secret, the whole file (rotate with `secret`)
    ttl_seconds: int = Field(default=900, ge=30, le=86400)

    @model_validator(mode="after")
    def _readable_secret_file(self) -> Self:
        # read at start too: a missing, unreadable, empty or short file (an empty key would
        # let anyone sign continue tokens) is refused here, naming the setting
        if self.secret == ():
            raise ValueError("secret: an empty list; give one secret or more, or none")
        if self.secret_file is not None:
            _check_secret_file(self.secret_file, "secret_file")
        return self

    def secrets(self) -> tuple[str, ...]:
        """The secrets, the signing one first: `secret` (one, or a list to rotate), else the
        one in `secret_file`, else none (a random key per process)."""
        if isinstance(self.secret, str):
            return (self.secret,)
        if self.secret:
            return self.secret
        if self.secret_file is not None:
            return (self.secret_file.read_text(encoding="utf-8").strip(),)
        return ()


class Config(_Model):
    """Everything `intercept serve` needs."""

    listen: str = Field(default="127.0.0.1:8080", pattern=_HOST_PORT.pattern)
    upstream: str = Field(default="http://127.0.0.1:8000", pattern=r"^https?://[^/?#]+/?$")
    mode: Literal["proxy", "authz"] = "proxy"
    rules: Path = Path("rules")
    rules_key_file: Path | None = None  # the key of a sealed bundle (`intercept seal`)
    rules_feed: RulesFeed | None = None  # instead of `rules`: see `_feed_replaces_rules`
    # compiled sets by source digest (intercept.compiling): "auto" picks a per-user folder
    rules_cache: Literal["auto", "off"] | Path = "auto"
    messages: Path | None = None  # None: the pages built into the package
    admin_listen: str = Field(default="127.0.0.1:9090", pattern=_HOST_PORT.pattern)
    survey_url: str = Field(default="https://survey.example/intercept", pattern=r"^https?://")
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    default_language: str = Field(default="en", pattern=r"^[a-z]{2,3}$")
    block_status: int = Field(default=200, ge=200, le=599)
    access_log: bool = False
    huge_pages: bool = True  # 2 MiB pages under the loaded rule set (intercept.hugepages)
    routes: tuple[Route, ...] = DEFAULT_ROUTES
    timeouts: Timeouts = Timeouts()
    upstream_pool: UpstreamPoolSettings = UpstreamPoolSettings()
    limits: Limits = Limits()
    forwarded: Forwarded = Forwarded()
    variants: Variants = Variants()
    survey: Survey = Survey()
    experiments: tuple[Experiment, ...] = ()
    warn: Warn = Warn()
    authz: Authz = Authz()
    ledger: LedgerSettings = LedgerSettings()
    reload: Reload = Reload()
    admin: Admin = Admin()
    readiness: Readiness = Readiness()
    # None: one process; N: a supervisor and N workers (with 1 too: reloads never stall it)
    workers: int | None = Field(default=None, ge=1, le=64)

    @field_validator("listen", "admin_listen")
    @classmethod
    def _port_in_range(cls, value: str) -> str:
        if int(value.rpartition(":")[2]) > 65535:
            raise ValueError("the port must be 0 to 65535")
        return value

    @model_validator(mode="before")
    @classmethod
    def _feed_replaces_rules(cls, data: Any) -> Any:
        """With `rules_feed`, `rules` is the feed's `cache_dir/current` (the version served);
        `rules` set as well (file, environment or `--rules`) is an error, not a choice."""
        if not isinstance(data, dict) or data.get("rules_feed") is None:
            return data
        if data.get("rules") is not None:
            raise ValueError(
                "rules and rules_feed are both set: rules_feed replaces rules (the rules "
                "served are the feed's, from rules_feed.cache_dir); remove one of them"
            )
        feed = data["rules_feed"]
        cache = feed.get("cache_dir") if isinstance(feed, dict) else feed.cache_dir
        cache = RulesFeed.model_fields["cache_dir"].default if cache is None else cache
        return {**data, "rules": Path(cache) / "current"}

    @model_validator(mode="after")
    def _experiments_apart(self) -> Self:
        names = [e.name for e in self.experiments]
        if len(set(names)) != len(names):
            raise ValueError(f"experiments: names repeat ({', '.join(sorted(names))})")
        ordered = sorted(self.experiments, key=lambda e: e.start)
        for before, after in itertools.pairwise(ordered):
            if after.start <= before.end:
                raise ValueError(
                    f"experiments: {before.name} and {after.name} overlap ({after.name} "
                    f"starts {after.start}, before {before.name} ends, {before.end})"
                )
        return self

    @model_validator(mode="after")
    def _upstream_readiness_needs_proxy(self) -> Self:
        if self.readiness.upstream and self.mode != "proxy":
            raise ValueError("readiness.upstream: only mode proxy has an upstream to wait for")
        return self

    @property
    def pages_folder(self) -> Path:
        """The pages folder in force: `messages`, else the one built into the package."""
        from intercept.resources import MESSAGES

        return self.messages if self.messages is not None else MESSAGES

    @property
    def upstream_base(self) -> str:
        return self.upstream.rstrip("/")


DEFAULT_CONFIG_YAML = """\
# Intercept configuration. Every key is optional; these are the defaults.
# Environment variables override the file: INTERCEPT_LISTEN, INTERCEPT_UPSTREAM, and for nested
# keys a double underscore: INTERCEPT_TIMEOUTS__CONNECT=2. Command-line flags override both.

listen: 127.0.0.1:8080            # the public listener: searchers' traffic
upstream: http://127.0.0.1:8000   # the search front-end Intercept sits in front of
mode: proxy                       # proxy (reverse proxy) | authz (decision service)
rules: rules                      # rule file or folder, read recursively, or a sealed bundle
rules_key_file: null              # the sealed bundle's key file (kept apart from the bundle)
rules_feed: null                  # instead of rules: a signed rule feed (rules/README.md,
                                  #   "Signed rule feed"); setting both is an error. E.g.
# rules_feed:
#   url: https://rules.example/feed/  # the folder `intercept feed publish -o` wrote, served
#   public_key_file: feed.pub       # from `intercept feed keygen`
#   poll_seconds: 30                # +-20% jitter; after failures doubled, up to 10 minutes
#   cache_dir: intercept-feed       # verified versions; a restart starts from the last one
#   timeout_seconds: 30             # per request (the payload: ten times this)
#   max_bytes: 268435456            # the largest payload fetched
#   start_wait_seconds: 120         # nothing cached yet: wait this long, then exit 2
rules_cache: auto                 # compiled rule sets (fast start): auto, off or a folder
messages: null                    # pages folder (templates, variants, help resources);
                                  # null: the built-in ones (`intercept init` copies them)
admin_listen: 127.0.0.1:9090      # metrics and health; never the public address
survey_url: https://survey.example/intercept   # gets only ?lang=..&variant=.. appended
country: null                     # ISO 3166 code: adds that country's help resources
default_language: en              # page language when neither rule nor browser decides
block_status: 200                 # HTTP status of the deterrence page
access_log: false                 # true: method, route name, status, duration; never more
huge_pages: true                  # Linux: 2 MiB pages under the loaded rules (fewer TLB misses)

variants:
  mode: weights                   # weights (random per request) | daily (rotate by date)
  weights: {harm: 1, legal: 1, help: 1, neutral: 1}
  control: neutral                # intercept report compares each other variant with it

survey:                           # questions on the page itself (none: the survey link only)
  questions: []                   # up to 3; see messages/examples/survey.yaml
  answer_ttl_seconds: 3600        # how long a page's answer form may be sent

experiments: []                   # e.g. [{name: spring, start: 2027-03-01, end: 2027-05-31,
                                  #   weights: {harm: 1, neutral: 1}, control: neutral}]

warn:
  secret: null                    # HMAC key for "continue to results" (>= 16 characters;
                                  #   a list rotates: the first signs, all verify);
  secret_file: null               #   or a file holding it; unset: a random key per process
  ttl_seconds: 900

timeouts:                         # seconds
  pool: 2                         # for a free slot in the upstream pool; then 503
  connect: 5
  header: 30                      # until the upstream's response head
  read_idle: 60                   # between two reads of the upstream's body
  client_header: 10               # a client's request head must be complete by then
  keepalive: 75                   # an idle client connection is closed after this

upstream_pool:                    # proxy mode: requests relayed to the upstream at once
  size: 256                       # each holds one upstream connection
  search_reserved: 64             # slots only search routes may use: slow other paths
                                  #   never make searches wait

limits:
  request_target: 8190            # longer: 414
  headers: 32768                  # all header lines together; more: 431
  query: 2048                     # characters of one query value; more: 414 (GET), 413 (body)
  body: 65536                     # bytes of a search body that is read to find the query: 413
  connections: null               # open client connections per process; null: from the
                                  #   file limit (raised to the hard limit at start), <= 10000
  admin_connections: 64           # the admin listener's own, so /readyz answers under a flood

workers: null                     # null: one process. N: a supervisor holding the listeners
                                  #   and N worker processes; with 1 too, since a reload
                                  #   then never pauses a serving process (about one per core)

ledger:                           # research ledger: hourly aggregate counts only
  url: "sqlite:intercept-ledger.db"   # or postgresql://user:pass@host/db; null: off
  flush_seconds: 5                # a crash loses at most this much counting
  retention_days: 400
  spool: null                     # counts unwritable at shutdown wait here for the next
                                  #   start; null: beside a SQLite ledger, else working dir

reload:                           # live reload of rules and messages (also on SIGHUP)
  watch: true                     # when files under rules/messages change
  poll_seconds: 2

admin:                            # POST /admin/reload and `intercept reload`
  reload_token: null              # bearer token (>= 16 characters); unset: endpoint off
  reload_token_file: null         #   or a file holding it

readiness:                        # what /readyz waits for besides loaded rules
  upstream: false                 # proxy mode: 503 while the upstream is failing (refused,
                                  #   reset, timeout), so a load balancer takes this replica out
  probe_path: /                   # with upstream: true, HEAD this path to see it answer again
  probe_seconds: 2                #   when no request reached the upstream for this long

authz:                            # mode: authz (decision service)
  trusted_proxies: [127.0.0.0/8, "::1/128"]   # front proxies whose X-Forwarded-* are read

forwarded:                        # headers added towards the upstream
  x_forwarded_for: true
  x_forwarded_proto: true
  x_forwarded_host: true
  via: true

# routes: where searches arrive. The default covers GET and POST /search with q, query, s or
# term, and the autocomplete endpoints /autocomplete, /autocompleter, /suggest,
# /complete/search with q. Setting routes replaces them all. Example:
# routes:
#   - name: search
#     path: /search                 # or path_regex: ^/s/(?P<q>[^/]+)$  (group q is the query)
#     methods: null                 # whose bodies are searched; null: every method's
#     params: [q]                   # query-string parameters
#     form_fields: [q]              # urlencoded or multipart form fields
#     json_pointers: [/query]       # JSON bodies
#     kind: search                  # search | autocomplete
#     suggest_format: opensearch    # autocomplete answers: opensearch ["", []] | json-list []
"""


_PATTERN_MEANINGS = {
    _HOST_PORT.pattern: "must be HOST:PORT, e.g. 127.0.0.1:8080",
    r"^https?://[^/?#]+/?$": "must be an http:// or https:// address without a path",
    r"^https?://": "must be an http:// or https:// address",
    r"^[A-Z]{2}$": "must be a two-letter country code such as FI",
    r"^[a-z]{2,3}$": "must be a language code such as en",
    r"^/": "must start with /",
    r"^/[!-~]*$": "must be a path starting with / (printable ASCII, no spaces)",
    r"^[a-z0-9][a-z0-9_-]{0,31}$": "must be 1 to 32 lowercase letters, digits, '_' or '-'",
}


def _error_text(error: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for detail in error.errors():
        path = [str(part) for part in detail["loc"]]
        key = ".".join(path) or "(top level)"
        message = detail["msg"].removeprefix("Value error, ")
        if detail["type"] == "string_pattern_mismatch":
            pattern = str((detail.get("ctx") or {}).get("pattern", ""))
            message = _PATTERN_MEANINGS.get(pattern, message)
        if detail["type"] == "extra_forbidden":
            close = difflib.get_close_matches(path[-1], _field_names(path[:-1]), n=1)
            message = "unknown key" + (f" (did you mean '{close[0]}'?)" if close else "")
        lines.append(f"  {key}: {message}{_shown_value(path, detail)}")
    return "\n".join(lines)


def _shown_value(path: list[str], detail: ErrorDetails) -> str:
    """` (got VALUE)` where repeating the value is safe, else nothing. Never for a secret
    (even a bad one), for anything under an unknown or misspelt key (`secert`), or for a
    whole section; a password in a URL (`ledger.url`) shows as ***."""
    value = detail.get("input")
    annotation = _annotation(path)
    if detail["type"] == "extra_forbidden" or annotation is None or isinstance(value, dict | list):
        return ""
    if path[-1].endswith(("secret", "token")) or hasattr(annotation, "model_fields"):
        return ""
    if isinstance(value, str):
        parts = urlsplit(value) if "://" in value else None
        if parts is not None and parts.password is not None:
            value = value.replace(f":{parts.password}@", ":***@", 1)
    return f" (got {value!r})"


def _field_names(path: list[str]) -> list[str]:
    model = Config if not path else _annotation(path)
    models = [a for a in get_args(model) if hasattr(a, "model_fields")]  # `rules_feed`
    model = models[0] if len(models) == 1 else model
    fields = getattr(model, "model_fields", None)
    return list(fields) if fields else []


def _set(tree: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        child = tree.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(path)}: '{part}' is not a mapping")
        tree = child
    tree[path[-1]] = value


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if path[0] not in Config.model_fields:
            _warn_if_misspelt(name, path[0])
            continue
        _set(tree, path, _env_value(path, raw))
    return tree


# INTERCEPT_WORKER marks a forked worker (intercept.server.serve); the others are the HAProxy Lua
# script's (deploy/haproxy) and the test suite's
_NOT_SETTINGS = frozenset({"worker", "addr", "timeout_ms", "fail_open", "test_postgres_url"})


def _warn_if_misspelt(name: str, key: str) -> None:
    """Other programs may use `INTERCEPT_*` names too (the HAProxy Lua script does), so one
    that is not a setting is ignored; but one that is nearly a setting's name is most likely
    a typo that would silently leave the default in force, and is warned about. The most
    common: a nested key written with one underscore (`INTERCEPT_WARN_SECRET` for
    `INTERCEPT_WARN__SECRET`)."""
    if key in _NOT_SETTINGS:
        return
    nested = _nested_spelling(key.split("_"), [])
    if nested is not None:
        suggestion = "__".join(nested).upper()
    else:
        close = difflib.get_close_matches(key, Config.model_fields, n=1, cutoff=0.8)
        if not close:
            return
        suggestion = close[0].upper()
    logging.getLogger("intercept").warning(
        "%s is not a setting and is ignored; did you mean %s%s?", name, ENV_PREFIX, suggestion
    )


def _nested_spelling(words: list[str], path: list[str]) -> list[str] | None:
    """The nested key whose parts, joined by single underscores, are `words` (`warn secret`
    is `warn.secret`; `admin reload token` is `admin.reload_token`), or None."""
    fields = _field_names(path)
    for cut in range(1, len(words) + 1):
        part = "_".join(words[:cut])
        if part not in fields:
            continue
        if cut == len(words):
            return [*path, part] if path else None  # a top-level name is no misspelling
        deeper = _nested_spelling(words[cut:], [*path, part])
        if deeper is not None:
            return deeper
    return None


_NULLS = frozenset({"", "null", "~", "Null", "NULL"})


def _env_value(path: list[str], raw: str) -> Any:
    """An environment value for the key at `path`: text fields take it as written (a secret
    of digits, `yes` or one holding ` #` stays exactly that), `null` aside where allowed;
    other fields read it as YAML (numbers, booleans, lists)."""
    annotation = _annotation(path)
    if annotation is not None and _is_text(annotation):
        return None if raw.strip() in _NULLS and _allows_none(annotation) else raw
    try:
        return yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        return raw


def _annotation(path: list[str]) -> Any:
    model: Any = Config
    annotation: Any = None
    for part in path:
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return None
        annotation = fields[part].annotation
        # a section that may be null (`rules_feed`) is walked into like any other
        models = [a for a in get_args(annotation) if hasattr(a, "model_fields")]
        model = models[0] if len(models) == 1 else annotation
    return annotation


def _is_text(annotation: Any) -> bool:
    """Whether an environment value for a field of this type is taken as written: a text, a
    path, or (`warn.secret`) a text that may also be given as a list in YAML."""
    kinds = [a for a in get_args(annotation) if a is not type(None)] or [annotation]
    kinds = [a for a in kinds if get_origin(a) is not tuple]  # the YAML-only list form
    return bool(kinds) and all(
        (get_origin(k) is Annotated and get_args(k)[0] is str) or k in (str, Path) for k in kinds
    )


def _allows_none(annotation: Any) -> bool:
    return type(None) in get_args(annotation)


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the configuration from file, environment and explicit overrides (CLI flags)."""
    environ = os.environ if environ is None else environ
    path = path or environ.get(ENV_PREFIX + "CONFIG") or None
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path}: cannot read configuration: {error}") from error
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {error}") from error
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of settings")
        data = loaded or {}
    env = _env_overrides(environ)
    if env:
        source += " + environment"
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    if flags:
        source += " + command line"
    data = _merge(_merge(data, env), flags)
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_error_text(error, source)) from None
