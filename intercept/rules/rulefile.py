"""Read rule files into validated `RuleSpec`s, reporting every problem of the set at once.

`read_rules()` is the only entry point. It reads each file with the strict YAML loader
(`intercept.rules.ruleyaml`), checks it against the schema models (`intercept.rules.ruleschema`),
then checks what needs more than one field or file: each rule names exactly one of `terms` and
`all_of`, gets `category` and `language` from itself or the file's `defaults`, and has an id used
nowhere else in the set. Every problem of every file is collected before anything is refused, so a
curator can fix them all in one go. Each problem names the file (as the caller wrote its path), the
line of the key or rule entry concerned, and the rule id when there is one. Messages look like::

    rules/a.yaml:12: rule DEMO-003: field 'action': must be one of block, warn, shadow (got 'bloc')
    rules/a.yaml:20: rule DEMO-004: unknown field (name not shown; did you mean 'terms'?)
    rules/b.yaml:7: rule DEMO-001: duplicate id DEMO-001 (first defined at rules/a.yaml:7)

Keyword lists are confidential and these problems reach server logs, `/admin/status` and the
answer of `POST /admin/reload` when rules are reloaded, so no problem quotes text that could be
a phrase: only label fields (`id`, `category`, `action`, `language`, `match`, the `list`
header) are quoted, and keys only when they are field names of the format (a word that is also
a field name is all such a message can reveal). Everything else is described (`got text`,
`got a number`, `unknown field (name not shown)`); the file and line say where to look.
`intercept.rules.ruleyaml` keeps its syntax messages free of the file's text too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from intercept.errors import Problem, RuleError
from intercept.rules.ruleschema import (
    FIELD_NAMES,
    PATTERN_MEANINGS,
    DefaultsModel,
    RuleFileModel,
    RuleModel,
    field_names_at,
    phrase_kind_problem,
)
from intercept.rules.rulespec import Action, ListInfo, MatchMode, RuleSpec
from intercept.rules.ruleyaml import DuplicateKey, LocatedDict, LocatedList, locate, read_yaml_file

__all__ = ["RULE_FILE_SUFFIXES", "read_rules"]

RULE_FILE_SUFFIXES = (".yaml", ".yml")
"""A folder is searched for files ending in one of these (any letter case)."""

_FieldPath = tuple[str | int, ...]

_PHRASE_FIELDS = frozenset({"terms", "all_of", "unless", "examples"})
_LABEL_FIELDS = frozenset(
    {"id", "category", "action", "language", "match", "name", "source", "updated"}
)
"""Messages quote text found in label fields only; see `_schema_message`."""


def read_rules(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
) -> tuple[list[RuleSpec], list[ListInfo]]:
    """Read every rule file under `paths` and return their rules and `list:` headers.

    Each path is a rule file, or a folder searched recursively for `*.yaml` and `*.yml` files
    (other files, and names starting with a dot, are skipped), read in sorted path order. A file
    reached twice is read once. Rules come back in load order with defaults applied (`action`
    block and `match` word unless set), `file` set to the path as given (a folder's path joined
    with the file's path inside it) and `line` to the line of the rule entry; headers come back
    one per file in the same order.

    Raises `RuleError` listing every problem of the whole set, file by file in line order, when
    there is any: then nothing is returned.
    """
    problems: list[Problem] = []
    specs: list[RuleSpec] = []
    lists: list[ListInfo] = []
    first_defined: dict[str, str] = {}
    for path, name in _rule_files(paths, problems):
        file_specs, list_info, file_problems = _read_rule_file(path, name, first_defined)
        problems.extend(file_problems)
        specs.extend(file_specs)
        if list_info is not None:
            lists.append(list_info)
    if problems:
        raise RuleError(problems)
    return specs, lists


def _rule_files(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    problems: list[Problem],
) -> list[tuple[Path, str]]:
    """The files to read, each with the name problems should use; path problems go to `problems`."""
    given = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    found: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for entry in given:
        name = os.fspath(entry)
        path = Path(entry)
        if path.is_dir():
            inside = _rule_files_in(path)
            if not inside:
                problems.append(Problem(name, 0, None, "no rule files (*.yaml, *.yml) in folder"))
            candidates = [(path / relative, os.path.join(name, relative)) for relative in inside]
        elif path.is_file():
            candidates = [(path, name)]
        else:
            message = "no such file or folder" if not path.exists() else "not a file or folder"
            problems.append(Problem(name, 0, None, message))
            continue
        for candidate, candidate_name in candidates:
            resolved = candidate.resolve()
            if resolved not in seen:
                seen.add(resolved)
                found.append((candidate, candidate_name))
    return found


def _rule_files_in(folder: Path) -> list[Path]:
    """Rule files under `folder`, relative to it, sorted by path; hidden names are skipped."""
    found: list[Path] = []
    for root, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".")]
        found.extend(
            Path(root, name).relative_to(folder)
            for name in files
            if not name.startswith(".") and name.lower().endswith(RULE_FILE_SUFFIXES)
        )
    return sorted(found, key=lambda relative: relative.parts)


def _read_rule_file(
    path: Path, name: str, first_defined: dict[str, str]
) -> tuple[list[RuleSpec], ListInfo | None, list[Problem]]:
    """Specs, header and problems of one file; `first_defined` maps ids seen so far to places."""
    try:
        document = read_yaml_file(path, file=name)
    except RuleError as error:
        return [], None, list(error.problems)
    data = document.data
    problems = _duplicate_key_problems(document.duplicate_keys, data, name)
    if data is None:
        problems.append(Problem(name, 0, None, "empty file: expected keys 'list' and 'rules'"))
        return [], None, problems
    if not isinstance(data, LocatedDict):
        # never quoted: a plain term list put where a rule file goes is all phrases
        got = _yaml_text(data, reveal=False)
        message = f"expected a mapping with keys 'list' and 'rules' (got {got})"
        problems.append(Problem(name, locate(data, ()), None, message))
        return [], None, problems
    raw_rules = data.get("rules")
    raw_rules = raw_rules if isinstance(raw_rules, LocatedList) else LocatedList(line=0)
    model: RuleFileModel | None = None
    try:
        model = RuleFileModel.model_validate(data)
    except ValidationError as error:
        problems.extend(
            _schema_problem(detail, data, name)
            for detail in error.errors()
            if not _is_consequence(detail)
        )
    problems.extend(_rule_set_problems(raw_rules, data.get("defaults", {}), name, first_defined))
    problems = _in_file_order(problems)
    if problems or model is None:
        return [], None, problems
    header = model.list_section
    list_info = ListInfo(name=header.name, source=header.source, updated=header.updated)
    specs = [
        _rule_spec(rule, model.defaults, name, raw_rules.item_lines[index], header.name)
        for index, rule in enumerate(model.rules)
    ]
    return specs, list_info, []


def _rule_set_problems(
    raw_rules: LocatedList, raw_defaults: Any, name: str, first_defined: dict[str, str]
) -> list[Problem]:
    """Checks that need a whole rule or file: phrase kind, category/language, unique ids.

    They run on the data as written, so they are reported even when fields are invalid.
    """
    problems: list[Problem] = []
    for index, raw in enumerate(raw_rules):
        if not isinstance(raw, LocatedDict):
            continue
        line = raw_rules.item_lines[index]
        rule_id = _rule_id(raw)
        phrase_problem = phrase_kind_problem(raw.keys())
        if phrase_problem:
            problems.append(Problem(name, line, rule_id, phrase_problem))
        if isinstance(raw_defaults, dict):
            for field in ("category", "language"):
                if field not in raw and field not in raw_defaults:
                    message = (
                        f"missing required field '{field}' (set it on the rule or in 'defaults')"
                    )
                    problems.append(Problem(name, line, rule_id, message))
        if rule_id is not None:
            if rule_id in first_defined:
                message = f"duplicate id {rule_id} (first defined at {first_defined[rule_id]})"
                problems.append(Problem(name, line, rule_id, message))
            else:
                first_defined[rule_id] = f"{name}:{line}"
    return problems


def _rule_spec(
    rule: RuleModel, defaults: DefaultsModel, name: str, line: int, list_name: str
) -> RuleSpec:
    category = rule.category or defaults.category
    language = rule.language or defaults.language
    if category is None or language is None:  # ruled out by _rule_set_problems
        raise AssertionError(f"rule {rule.id} was read without category or language")
    return RuleSpec(
        id=rule.id,
        category=category,
        action=rule.action or defaults.action or Action.BLOCK,
        language=language,
        match=rule.match or defaults.match or MatchMode.WORD,
        terms=rule.terms,
        all_of=rule.all_of,
        unless=rule.unless,
        examples_match=rule.examples.match,
        examples_no_match=rule.examples.no_match,
        file=name,
        line=line,
        list_name=list_name,
        status=rule.status,
        expires=rule.expires,
    )


def _rule_id(raw: Any) -> str | None:
    """The id a rule entry was given, if it is a non-empty string (valid or not)."""
    rule_id = raw.get("id") if isinstance(raw, dict) else None
    return rule_id if isinstance(rule_id, str) and rule_id else None


def _rule_at(data: Any, loc: Sequence[str | int]) -> tuple[str | None, _FieldPath]:
    """The id of the rule that `loc` points into, and `loc` relative to that rule."""
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        raw_rules = data.get("rules") if isinstance(data, dict) else None
        if isinstance(raw_rules, list) and 0 <= loc[1] < len(raw_rules):
            return _rule_id(raw_rules[loc[1]]), tuple(loc[2:])
    return None, tuple(loc)


def _duplicate_key_problems(
    duplicates: Sequence[DuplicateKey], data: Any, name: str
) -> list[Problem]:
    """One problem per repeated key, naming the rule it was written in, if any."""
    raw_rules = data.get("rules") if isinstance(data, dict) else None
    owners = _rule_ids_by_container(raw_rules) if duplicates and isinstance(raw_rules, list) else {}
    return [
        Problem(name, dup.line, owners.get(id(dup.mapping)), _duplicate_message(dup))
        for dup in duplicates
    ]


def _duplicate_message(duplicate: DuplicateKey) -> str:
    """`duplicate key 'terms' (first at line 5)`; a key that is no field name of the format
    (a phrase written as a key) is not quoted."""
    if isinstance(duplicate.key, str) and duplicate.key in FIELD_NAMES:
        return duplicate.message
    return f"duplicate key (name not shown; first at line {duplicate.first_line})"


def _rule_ids_by_container(raw_rules: list[Any]) -> dict[int, str | None]:
    """Maps `id()` of every mapping and list inside each rule entry to that rule's id."""
    owners: dict[int, str | None] = {}
    for raw in raw_rules:
        rule_id = _rule_id(raw)
        pending = [raw]
        while pending:
            node = pending.pop()
            if id(node) in owners:
                continue
            if isinstance(node, dict):
                owners[id(node)] = rule_id
                pending.extend(node.values())
            elif isinstance(node, list):
                owners[id(node)] = rule_id
                pending.extend(node)
    return owners


def _in_file_order(problems: list[Problem]) -> list[Problem]:
    """Problems sorted by line (stable), each reported once."""
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda problem: problem.line)


def _is_consequence(detail: ErrorDetails) -> bool:
    """Whether an error only repeats others: a list counted too short because items failed."""
    return detail["type"] == "too_short" and bool(detail["input"])


def _schema_problem(detail: ErrorDetails, data: Any, name: str) -> Problem:
    loc = tuple(detail["loc"])
    rule_id, field_path = _rule_at(data, loc)
    return Problem(name, locate(data, loc), rule_id, _schema_message(detail, loc, field_path))


def _schema_message(detail: ErrorDetails, loc: _FieldPath, field_path: _FieldPath) -> str:
    """A pydantic error in curator's words; `field_path` is the path shown as the field.

    The offending value is quoted when it sits in a label field (`got 'bloc'` for `action`).
    Other text, which may be a phrase (under `terms`, `examples`, or a phrase written where a
    rule or list belongs), shows as `got text` unless it is blank: keyword lists are confidential
    and these messages may reach server logs when rules are reloaded.
    """
    kind = detail["type"]
    value = detail["input"]
    reveal = (
        bool(field_path) and field_path[0] not in _PHRASE_FIELDS and field_path[-1] in _LABEL_FIELDS
    )
    context = detail.get("ctx", {})
    field = _path_text(field_path)
    subject = f"field '{field}': " if field else ""
    if kind == "missing":
        return f"missing required field '{field}'"
    if kind == "extra_forbidden":
        close = get_close_matches(str(field_path[-1]), field_names_at(loc[:-1]), n=1)
        suggestion = f"did you mean '{_path_text((*field_path[:-1], close[0]))}'?" if close else ""
        if field_path[-1] in FIELD_NAMES:  # a field of the format, in the wrong place
            return f"unknown field '{field}'" + (f" ({suggestion})" if suggestion else "")
        container = _path_text(field_path[:-1])
        where = f" in '{container}'" if container else ""
        return f"unknown field{where} (name not shown{'; ' + suggestion if suggestion else ''})"
    if kind == "invalid_key":
        container = _path_text(field_path[:-1])
        where = f"field '{container}': " if container else ""
        return f"{where}keys must be text (got {_yaml_text(value, reveal=reveal)})"
    if kind == "model_type" and not field_path and loc[:1] == ("rules",):
        return f"a rule must be a mapping with an 'id' (got {_yaml_text(value, reveal=reveal)})"
    if kind == "too_short":
        return f"{subject}must not be an empty list"
    if kind == "value_error":
        got = "" if value is None or not field else f" (got {_yaml_text(value, reveal=reveal)})"
        return f"{subject}{context['error']}{got}"
    if kind == "string_pattern_mismatch":
        pattern = str(context["pattern"])
        need = f"must be {PATTERN_MEANINGS.get(pattern, f'text matching {pattern}')}"
    elif kind in ("enum", "literal_error"):
        need = "must be one of " + ", ".join(re.findall(r"'([^']*)'", str(context["expected"])))
    elif kind == "string_too_long":
        need = f"must be at most {context['max_length']} characters"
    elif kind == "string_type":
        need = "must be text"
    elif kind in ("tuple_type", "list_type"):
        need = "must be a list"
    elif kind in ("model_type", "dict_type", "model_attributes_type"):
        need = "must be a mapping"
    else:
        need = detail["msg"]
    return f"{subject}{need} (got {_yaml_text(value, reveal=reveal)})"


def _path_text(path: _FieldPath) -> str:
    """`("examples", "match", 1)` as `examples.match[1]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _yaml_text(value: Any, *, reveal: bool = True, limit: int = 40) -> str:
    """A short description of a value as YAML would show it: `'bloc'`, `null`, `a list`.

    With `reveal` false, text that is not blank shows as `text` and a number as `a number`
    (a term written unquoted may be one).
    """
    if isinstance(value, str) and not reveal and value.strip():
        return "text"
    if isinstance(value, int | float) and not isinstance(value, bool) and not reveal:
        return "a number"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= limit else value[:limit] + "...")
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a value of type {type(value).__name__}"
