"""What `intercept config` prints: the settings in force, with secrets hidden.

An operator runs `intercept config` to see what a server would use, and pastes the output into
tickets and chats. So a secret is never printed: `warn.secret` and `admin.reload_token` show as
`***` followed by where the value came from (the file, or which environment variable), and the
ledger URL's password as `***` the same way. Files that hold secrets (`*_file`) are paths and are
shown as they are.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from intercept.config import ENV_PREFIX, Config
from intercept.research.ledger import redacted_url
from intercept.server.feedpoll import shown_url

__all__ = ["SECRETS", "shown_settings"]

SECRETS: tuple[tuple[str, ...], ...] = (("warn", "secret"), ("admin", "reload_token"))
_LEDGER_URL = ("ledger", "url")


def _lookup(tree: Any, key: tuple[str, ...]) -> Any:
    for part in key:
        if not isinstance(tree, Mapping) or part not in tree:
            return None
        tree = tree[part]
    return tree


def _source(key: tuple[str, ...], path: str | Path | None, environ: Mapping[str, str]) -> str:
    """Where the value of `key` came from, in the order `load_config` lets them win."""
    name = ENV_PREFIX + "__".join(part.upper() for part in key)
    for variable in environ:
        if variable.upper() == name:
            return f"from environment {variable}"
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            data = None
        if _lookup(data, key) is not None:
            return f"from {path}"
    return "from the defaults"


def shown_settings(
    config: Config, path: str | Path | None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """`config` as JSON-ready data with every secret replaced (see the module docstring).
    `path` and `environ` are what `config` was loaded from."""
    environ = os.environ if environ is None else environ
    path = path or environ.get(ENV_PREFIX + "CONFIG") or None
    data = config.model_dump(mode="json")
    for key in SECRETS:
        section = data[key[0]]
        if section.get(key[1]) is not None:
            section[key[1]] = f"*** ({_source(key, path, environ)})"
    url = data["ledger"]["url"]
    if url is not None and urlsplit(url).password is not None:
        data["ledger"]["url"] = (
            f"{redacted_url(url)} (password {_source(_LEDGER_URL, path, environ)})"
        )
    feed = data.get("rules_feed")
    if feed and shown_url(feed["url"]) != feed["url"]:  # credentials or a token in it
        source = _source(("rules_feed", "url"), path, environ)
        feed["url"] = f"{shown_url(feed['url'])} (credentials {source})"
    return data
