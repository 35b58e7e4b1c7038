"""Rule text never reaches a refusal: not in a problem, a log line, `/admin/status` or a reload
answer, whatever is wrong with the rule file.

Keyword lists are confidential, and the problems of a refused rule set are logged and shown by a
serving `intercept serve` when it loads or reloads rules. Each case below writes a rule file (or
sealed bundle, or key file) holding a canary, a synthetic word found nowhere else, in the place a
curator's mistake would put a phrase; the set must be refused, and the canary must appear in
none of its problems, in the error's text, nor in its printed traceback (a chained PyYAML error
would print the offending line). Every case goes through `intercept.load_rules` and through the
reload path (`intercept.reload.load_checked`, which also runs every rule's examples).

Label fields (`id`, `category`, `action`, `language`, `match`, the `list` header) are quoted by
design when invalid (`got 'bloc'`), so no case puts the canary there. Two rules sharing a
phrase, a phrase that normalizes to nothing and an `unless` that covers the rule's own phrase
are not refusals (`intercept check` warns about them on the curator's terminal), so they are
not cases either.

The process tests run a real `intercept serve`: refused reloads by the file watcher, by
`POST /admin/reload` and by SIGHUP, and a start with a bad file.
"""

from __future__ import annotations

import json
import os
import signal
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

import intercept
from intercept.errors import RuleError
from intercept.reload import load_checked
from intercept.rules.rulespec import ListInfo
from intercept.rules.ruleyaml import read_yaml_file
from intercept.rules.seal import _mac, new_key_file, read_key_file, seal_rules
from intercept.rules.sealedset import BundleKeys
from tests.conftest import spec
from tests.processes import free_port, intercept_process
from tests.upstream import repo_config

ROOT = Path(__file__).parents[2]
CANARY = "canarywordzeta"
NUMBER = "73910462"  # a term written as a bare number is read as one
LEAKS = (CANARY, CANARY[:8], NUMBER, "wordzeta")
TOKEN = "a-reload-token-of-enough-length"

HEAD = """\
list: {name: privacy, source: synthetic, updated: 2026-11-29}
defaults: {category: demo, language: en}
rules:
"""
RULE = HEAD + "  - id: P-1\n"
GOOD = RULE + '    terms: ["garden kite"]\n    examples: {match: ["a garden kite"]}\n'

# A case writes its files into a folder and returns (the rules path, the key file or None).
Writer = Callable[[Path], tuple[Path, Path | None]]


def rule_file(content: str | bytes) -> Writer:
    def write(folder: Path) -> tuple[Path, Path | None]:
        path = folder / "rules.yaml"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path, None

    return write


def bundle_file(content: str, *, key: bool = True) -> Writer:
    """A file that starts like a sealed bundle, with a valid key file (or none)."""

    def write(folder: Path) -> tuple[Path, Path | None]:
        path = folder / "rules.bundle"
        path.write_text(content, encoding="utf-8")
        if not key:
            return path, None
        key_file = folder / "bundle.key"
        new_key_file(key_file)
        return path, key_file

    return write


def authenticated_bundle_with_extra_field(folder: Path) -> tuple[Path, Path | None]:
    """A bundle with a correct MAC and a field named after the canary: only a faulty tool
    holding the key makes one, and the refusal still does not name the field."""
    key_file = folder / "bundle.key"
    new_key_file(key_file)
    secret = read_key_file(key_file)
    lists = (ListInfo("privacy", "synthetic", "2026-11-29"),)
    document = json.loads(seal_rules([spec("P-1", "garden kite")], lists, secret).text)
    document.pop("mac")
    document[CANARY] = "x"
    document["mac"] = _mac(BundleKeys.derive(secret, bytes.fromhex(document["salt"])).mac, document)
    path = folder / "rules.bundle"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path, key_file


def key_file_holding_rule_text(folder: Path) -> tuple[Path, Path | None]:
    """A rule file given as the key file by mistake, with a real bundle."""
    bundle, _ = authenticated_bundle_with_extra_field(folder)
    key_file = folder / "rules.key"
    key_file.write_text(f"{CANARY}\nblue kite\n", encoding="utf-8")
    return bundle, key_file


CASES: dict[str, Writer] = {
    # a term list where a rule file goes
    "plain term list, one a line": rule_file(f"{CANARY}\nblue kite\nred teapot\n"),
    "one bare term": rule_file(f"{CANARY}\n"),
    "comma-separated terms": rule_file(f"{CANARY}, blue kite, red teapot\n"),
    "yaml list of terms": rule_file(f"- {CANARY}\n- blue kite\n"),
    "json list of terms": rule_file(f'["{CANARY}", "blue kite"]\n'),
    "a bare number": rule_file(f"{NUMBER}\n"),
    "phrases as keys": rule_file(f"{CANARY}: block\nblue kite: warn\n"),
    "json object of phrases": rule_file(f'{{"{CANARY}": "block"}}\n'),
    # a term list where rules or a field go
    "term list under rules": rule_file(HEAD + f"  - {CANARY}\n  - blue kite\n"),
    "numbers under rules": rule_file(HEAD + f"  - {NUMBER}\n  - 12\n"),
    "rules as text": rule_file(HEAD.replace("rules:\n", f"rules: {CANARY}\n")),
    "rule written as phrase key": rule_file(HEAD + f"  - {CANARY}: block\n"),
    "terms as text": rule_file(RULE + f"    terms: {CANARY}\n"),
    "terms as mapping": rule_file(RULE + f"    terms: {{{CANARY}: 1}}\n"),
    "term as mapping": rule_file(RULE + f"    terms: [{{{CANARY}: x}}]\n"),
    "term as number": rule_file(RULE + f"    terms: [{NUMBER}]\n"),
    "all_of without groups": rule_file(RULE + f"    all_of: [{CANARY}, blue]\n"),
    "unless as text": rule_file(RULE + f"    terms: [blue]\n    unless: {CANARY}\n"),
    "examples as text": rule_file(RULE + f"    terms: [blue]\n    examples: {CANARY}\n"),
    "examples.match as text": rule_file(
        RULE + f"    terms: [blue]\n    examples: {{match: {CANARY}}}\n"
    ),
    "phrase too long": rule_file(RULE + f'    terms: ["{CANARY} {"kite " * 100}"]\n'),
    "phrase too long once normalized": rule_file(RULE + f'    terms: ["{CANARY} {"ﷺ" * 480}"]\n'),
    "blank unless beside the canary": rule_file(
        RULE + f'    terms: [{CANARY}]\n    unless: [" "]\n'
    ),
    # keys
    "unknown field named after it": rule_file(RULE + f"    terms: [blue]\n    {CANARY}: 1\n"),
    "unknown top-level key": rule_file(f"{CANARY}: 1\n" + RULE + "    terms: [blue]\n"),
    "duplicate key named after it": rule_file(
        RULE + f"    terms: [blue]\n    {CANARY}: 1\n    {CANARY}: 2\n"
    ),
    "duplicate phrase key in terms": rule_file(
        RULE + f"    terms:\n      {CANARY}: 1\n      {CANARY}: 2\n"
    ),
    "number as key": rule_file(RULE + f"    terms: [blue]\n    {NUMBER}: x\n"),
    "mapping as key": rule_file(RULE + f"    terms: [blue]\n    {{{CANARY}: 1}}: x\n"),
    # YAML syntax on a line holding the canary
    "tab indent": rule_file(RULE + f"    terms:\n\t- {CANARY}\n"),
    "unclosed double quote": rule_file(RULE + f'    terms: ["{CANARY}]\n'),
    "unclosed single quote": rule_file(RULE + f"    terms:\n      - '{CANARY}\n"),
    "bad indentation": rule_file(RULE + f"    terms:\n      - blue\n     - {CANARY}\n"),
    "colon inside a flow": rule_file(RULE + f"    terms: [{CANARY}: x: y]\n"),
    "two colons in a plain scalar": rule_file(RULE + f"    terms:\n      - {CANARY}: x: y\n"),
    "unknown escape": rule_file(RULE + f'    terms: ["{CANARY}\\q"]\n'),
    "bad hex escape": rule_file(RULE + f'    terms: ["{CANARY}\\xZZ"]\n'),
    "undefined alias": rule_file(RULE + f"    terms: [*{CANARY}]\n"),
    "duplicate anchor": rule_file(RULE + f"    terms: [&{CANARY} a, &{CANARY} b]\n"),
    "alias bomb-free merge of text": rule_file(RULE + f"    terms: [blue]\n    <<: {CANARY}\n"),
    "control character": rule_file(RULE + f"    terms: [{CANARY}\x07]\n"),
    "a second document of terms": rule_file(RULE + f"    terms: [blue]\n---\n- {CANARY}\n"),
    "bad block scalar header": rule_file(RULE + f"    terms: |x\n      {CANARY}\n"),
    "not UTF-8": rule_file(
        (RULE + f"    terms: [{CANARY}]\n").encode() + b"\xff " + CANARY.encode()
    ),
    # tags
    "!!int on a phrase": rule_file(RULE + f"    terms: [!!int {CANARY}]\n"),
    "!!float on a phrase": rule_file(RULE + f"    terms: [!!float {CANARY}]\n"),
    "!!bool on a phrase": rule_file(RULE + f"    terms: [!!bool {CANARY}]\n"),
    "custom tag named after it": rule_file(RULE + f"    terms: [!{CANARY} blue]\n"),
    "unknown standard tag": rule_file(RULE + f"    terms: [!!{CANARY} blue]\n"),
    "python tag": rule_file(RULE + f"    terms: [!!python/name:{CANARY} blue]\n"),
    "verbatim tag": rule_file(RULE + f"    terms: [!<tag:{CANARY}> blue]\n"),
    "undefined tag handle": rule_file(RULE + f"    terms: [!{CANARY}!x blue]\n"),
    "duplicate %TAG handle": rule_file(
        f"%TAG !{CANARY}! tag:a,\n%TAG !{CANARY}! tag:b,\n---\n{GOOD}"
    ),
    # examples, run by the reload path only
    "example that does not match": rule_file(
        RULE + f'    terms: ["garden kite"]\n    examples: {{match: ["{CANARY}"]}}\n'
    ),
    "example that should not match": rule_file(
        RULE + f'    terms: ["garden kite"]\n    examples: {{no_match: ["garden kite {CANARY}"]}}\n'
    ),
    # sealed bundles and key files
    "bundle whose format is the canary": bundle_file(
        f'{{"format": "intercept-sealed-bundle/{CANARY}", "terms": ["{CANARY}"]}}\n'
    ),
    "bundle whose fingerprint is the canary": bundle_file(
        f'{{"format": "intercept-sealed-bundle/1", "key_fingerprint": "{CANARY}"}}\n'
    ),
    "bundle that is not JSON": bundle_file(f'{{"format": "intercept-sealed-bundle/1", {CANARY}\n'),
    "bundle without a key file": bundle_file(
        f'{{"format": "intercept-sealed-bundle/1", "terms": ["{CANARY}"]}}\n', key=False
    ),
    "authenticated bundle with a field named after it": authenticated_bundle_with_extra_field,
    "rule file given as the key file": key_file_holding_rule_text,
}
RELOAD_ONLY = {"example that does not match", "example that should not match"}
YAML_LEVEL = {
    *(name for name in CASES if "tag" in name.lower() or name.startswith("!!")),
    "tab indent", "unclosed double quote", "unclosed single quote", "bad indentation",
    "colon inside a flow", "two colons in a plain scalar", "unknown escape", "bad hex escape",
    "undefined alias", "duplicate anchor", "alias bomb-free merge of text", "control character",
    "a second document of terms", "bad block scalar header", "not UTF-8", "mapping as key",
}  # fmt: skip
"""Cases refused by the YAML reader itself."""


def assert_canary_free(text: str) -> None:
    found = [leak for leak in LEAKS if leak in text.lower()]
    assert not found, f"rule text {found} in: {text}"


def assert_refusal_canary_free(error: RuleError) -> None:
    assert error.problems, "a refusal names its problems"
    for problem in error.problems:
        assert_canary_free(f"{problem.file} {problem.line} {problem.rule_id} {problem.message}")
    assert_canary_free(str(error))
    assert_canary_free("".join(traceback.format_exception(error)))


@pytest.mark.parametrize("case", list(CASES))
def test_a_refused_set_never_quotes_rule_text(case: str, tmp_path: Path) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    path, key_file = CASES[case](folder)
    raw = path.read_bytes() + (key_file.read_bytes() if key_file else b"")
    assert CANARY.encode() in raw or NUMBER.encode() in raw
    if case in RELOAD_ONLY:
        intercept.load_rules(path, key_file=key_file)  # the file itself is valid
    else:
        with pytest.raises(RuleError) as caught:
            intercept.load_rules(path, key_file=key_file)
        assert_refusal_canary_free(caught.value)
    key_setting = {"rules_key_file": str(key_file)} if key_file else {}
    config = repo_config(rules=str(path), mode="authz", **key_setting)
    with pytest.raises(RuleError) as caught:
        load_checked(config)
    assert_refusal_canary_free(caught.value)


@pytest.mark.parametrize("case", sorted(YAML_LEVEL))
def test_the_yaml_reader_alone_never_chains_rule_text(case: str, tmp_path: Path) -> None:
    """`read_yaml_file` (also used for message files) raises without PyYAML's error as the
    cause: that error's text prints the offending line."""
    path, _ = CASES[case](tmp_path)
    with pytest.raises(RuleError) as caught:
        read_yaml_file(path, file="rules.yaml")
    assert_refusal_canary_free(caught.value)
    assert caught.value.__cause__ is None


def test_the_good_file_of_these_tests_loads(tmp_path: Path) -> None:
    """The cases differ from a valid file by their mistake only."""
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD, encoding="utf-8")
    assert [rule.id for rule in intercept.load_rules(path).rules] == ["P-1"]


# --- a real `intercept serve` -----------------------------------------------------------------


def _get_json(url: str) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _post_reload(admin: str) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"http://{admin}/admin/reload", method="POST", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _refused(admin: str) -> list[str]:
    _, status = _get_json(f"http://{admin}/admin/status")
    rules = status["rules"]
    assert isinstance(rules, dict)
    refused = rules["last_reload_refused"]
    return list(refused) if isinstance(refused, list) else []


def _replace(folder: Path, text: str) -> None:
    temporary = folder / ".rules.yaml.tmp"
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, folder / "rules.yaml")  # as a deployment would


def _wait_for_refusal(admin: str, marker: str, seconds: float = 20) -> list[str]:
    """The refused problems once one of them contains `marker` (the new file's mistake)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        problems = _refused(admin)
        if any(marker in problem for problem in problems):
            return problems
        time.sleep(0.1)
    raise AssertionError(f"no refusal mentioning {marker!r}; last: {_refused(admin)}")


def _serve_env() -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "INTERCEPT_WARN__SECRET": "a-test-secret-of-enough-length",
        "INTERCEPT_LEDGER__URL": "null",
        "INTERCEPT_ADMIN__RELOAD_TOKEN": TOKEN,
        "INTERCEPT_RELOAD__POLL_SECONDS": "0.2",
    }


def _serve_command(folder: Path, public: int, admin: int) -> list[str]:
    return [
        "serve", "--mode", "authz", "--listen", f"127.0.0.1:{public}",
        "--admin-listen", f"127.0.0.1:{admin}", "--rules", str(folder),
        "--messages", str(ROOT / "messages"),
    ]  # fmt: skip


def test_refused_reloads_of_a_running_server_never_show_rule_text(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    _replace(folder, GOOD)
    public, admin_port = free_port(), free_port()
    admin = f"127.0.0.1:{admin_port}"
    with intercept_process(*_serve_command(folder, public, admin_port), env=_serve_env()) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        assert "decision service" in proc.stdout.readline()
        assert _refused(admin) == []

        # the file watcher: a plain term list put where the rule file goes
        _replace(folder, f"{CANARY}\nblue kite\nred teapot\n")
        seen = _wait_for_refusal(admin, "expected a mapping")

        # POST /admin/reload: a phrase written as a key, and a YAML error on its line
        _replace(folder, RULE + f"    terms: [blue]\n    {CANARY}: 1\n    {CANARY}: 2\n")
        code, answer = _post_reload(admin)
        assert code == 422
        assert answer["ok"] is False
        assert "duplicate key" in json.dumps(answer["problems"])
        seen += _wait_for_refusal(admin, "duplicate key")
        _replace(folder, RULE + f"    terms: [*{CANARY}, !!int {CANARY}]\n")
        code, second = _post_reload(admin)
        assert code == 422
        assert "undefined alias" in json.dumps(second["problems"])

        # SIGHUP: an example that fails, and a term written as a bare number
        _replace(
            folder, RULE + f'    terms: ["garden kite"]\n    examples: {{match: ["{CANARY}"]}}\n'
        )
        proc.send_signal(signal.SIGHUP)
        seen += _wait_for_refusal(admin, "examples.match #1")
        _replace(folder, RULE + f"    terms: [{NUMBER}]\n")
        proc.send_signal(signal.SIGHUP)
        seen += _wait_for_refusal(admin, "got a number")

        # the old set kept serving throughout
        _, status = _get_json(f"http://{admin}/admin/status")
        rules = status["rules"]
        assert isinstance(rules, dict)
        assert rules["count"] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        stdout, stderr = proc.stdout.read(), proc.stderr.read()
    assert_canary_free(json.dumps([seen, answer, second, status]))
    for trigger in ("files changed", "POST /admin/reload", "SIGHUP"):  # each was logged...
        assert f"reload ({trigger}) refused" in stderr, stderr
    assert_canary_free(stdout)
    assert_canary_free(stderr)  # ...without its rule text


def test_a_server_started_with_a_bad_rule_file_exits_without_showing_it(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    _replace(folder, f"{CANARY}\nblue kite\nred teapot\n")
    command = _serve_command(folder, free_port(), free_port())
    with intercept_process(*command, env=_serve_env()) as proc:
        assert proc.wait(timeout=60) == 2
        assert proc.stdout is not None
        assert proc.stderr is not None
        stdout, stderr = proc.stdout.read(), proc.stderr.read()
    assert "rule set refused" in stderr
    assert "rules.yaml: expected a mapping" in stderr
    assert_canary_free(stdout)
    assert_canary_free(stderr)
