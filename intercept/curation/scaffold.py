"""`intercept init DIR`: a starting folder an operator edits into their deployment.

It writes a commented configuration (the default one, with this folder's absolute paths filled
in), a rules folder with one example rule, a copy of the built-in pages, and a random warn
secret and reload token, each in a file only its owner can read. Nothing that exists is
overwritten: an operator's edits are never lost to a second `init`. Paths in the
configuration are absolute, because Intercept reads relative paths from the folder it is
started in, not from the file's.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from datetime import date
from pathlib import Path

from intercept.config import DEFAULT_CONFIG_YAML
from intercept.errors import InterceptError
from intercept.resources import MESSAGES

__all__ = ["EXAMPLE_RULES", "InitError", "init_folder", "next_steps"]

EXAMPLE_RULES = """\
# An example rule file written by `intercept init`. Replace it with your curated lists, loaded
# from outside any public repository (`intercept schema > schema.json` gives editors the
# format). `intercept check rules/` validates the folder and runs every rule's examples; the
# server refuses a set whose examples fail and keeps the old one serving.
list:
  name: example
  source: "written by intercept init; an everyday word, not a real list"
  updated: {today}
defaults:
  category: example
  action: block
  language: en

rules:
  - id: EXAMPLE-001
    terms: ["example forbidden phrase"]
    examples:
      match: ["example forbidden phrase", "EXAMPLE-F0RBIDDEN-phrase"]
      no_match: ["forbidden example", "an example phrase"]
"""

_README = """\
Intercept, set up by `intercept init`. Edit before serving real traffic:

  intercept.yaml      upstream (your search front-end), listen addresses, survey_url (your
                      survey's address: the placeholder is warned about at every start)
  rules/              your rule files (example.yaml is a placeholder; `intercept check rules`)
  messages/           the pages: resources.yaml (help lines for your country), en.yaml and
                      the other languages (wording), page.html.j2 (layout)
  warn.secret         the key of "continue to results" links: keep it, share it between replicas
  reload.token        the bearer token of POST /admin/reload and `intercept reload --config`

Then: intercept check {root}/rules && intercept serve --config {root}/intercept.yaml
"""


class InitError(InterceptError):
    """The folder cannot be set up (a file is in the way, or it cannot be written)."""


def _configured(root: Path) -> str:
    """The default configuration with this folder's paths and the lines to edit marked.
    Each replaced line must be found exactly once, so a change to the default file shows up
    here as an error rather than as a setting silently left at its default."""
    changes = {
        r"^# Intercept configuration\. .*$": (
            f"# Intercept configuration written by `intercept init` for {root}.\n"
            "# Lines marked EDIT need your values; every other line is the default."
        ),
        r"^upstream: .*$": "upstream: http://127.0.0.1:8000   # EDIT: your search front-end",
        r"^rules: .*$": f"rules: {root / 'rules'}   # rule file or folder, read recursively",
        r"^messages: .*\n.*$": f"messages: {root / 'messages'}   # EDIT: wording, help resources",
        r"^survey_url: .*$": (
            "survey_url: https://survey.example/intercept   # EDIT: your survey's address"
        ),
        r"^  secret_file: .*$": f"  secret_file: {root / 'warn.secret'}   # written by init",
        r"^  reload_token_file: .*$": (
            f"  reload_token_file: {root / 'reload.token'}   # written by init"
        ),
        r"^  url: \"sqlite:.*$": f'  url: "sqlite://{root / "ledger.sqlite3"}"',
    }
    text = DEFAULT_CONFIG_YAML
    for pattern, replacement in changes.items():
        text, count = re.subn(pattern, replacement, text, count=0, flags=re.MULTILINE)
        if count != 1:
            raise AssertionError(f"default configuration: {pattern!r} found {count} times")
    return text


def init_folder(folder: Path) -> list[Path]:
    """Write the starting files into `folder` (created if missing) and return what was
    written. Raises `InitError` naming every file that already exists, before writing any."""
    root = folder.resolve()
    names = ("intercept.yaml", "rules", "messages", "warn.secret", "reload.token", "README")
    targets = [root / name for name in names]
    present = [path for path in targets if path.exists() or path.is_symlink()]
    if present:
        listed = ", ".join(str(path) for path in present)
        raise InitError(f"{root}: already holds {listed}; nothing was written")
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / "rules").mkdir()
        example = EXAMPLE_RULES.replace("{today}", date.today().isoformat())
        (root / "rules" / "example.yaml").write_text(example, encoding="utf-8")
        shutil.copytree(MESSAGES, root / "messages")
        for name in ("warn.secret", "reload.token"):
            descriptor = os.open(root / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as out:
                out.write(secrets.token_hex(32) + "\n")
        (root / "intercept.yaml").write_text(_configured(root), encoding="utf-8")
        (root / "README").write_text(_README.format(root=root), encoding="utf-8")
    except OSError as error:
        raise InitError(f"{root}: cannot write ({error})") from error
    return targets


def next_steps(root: Path) -> str:
    """What the operator edits next, printed by `intercept init`."""
    return _README.format(root=root.resolve())
