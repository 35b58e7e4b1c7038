"""Strict YAML reading for rule files: plain data, every line known, no surprises.

`parse_yaml()` and `read_yaml_file()` return plain Python data built by a loader derived from
`yaml.SafeLoader`, with these differences:

- Mappings are `LocatedDict` and sequences are `LocatedList`: ordinary `dict` and `list`
  subclasses that also carry the 1-based line where they start and the line of each key or item,
  so that every later error can point at the line to fix (`locate()` follows an error path).
- A key repeated in one mapping is recorded as a `DuplicateKey` (with both lines) instead of
  silently replacing the first value; loading carries on, so all repetitions are reported at once.
  The last value wins in the returned data, as in plain YAML. Keys brought in by a merge key
  (`<<: *anchor`) may be overridden without being reported.
- Plain scalars are resolved as in the YAML 1.2 core schema, the one editors and the YAML language
  server use: only `true`/`false` are booleans (`no`, the Norwegian language tag, stays a string),
  dates stay strings (`updated: 2026-11-29` is `"2026-11-29"`), and `012` is the integer 12.
- Only plain YAML is accepted: text, numbers, booleans, null, mappings and sequences. Other tags
  (`!!binary`, `!!set`, `!!timestamp`, `!!python/...`, custom `!tags`), an alias inside the node
  it refers to, and documents larger than `MAX_VALUES` values once aliases are expanded are
  refused as invalid YAML.

Syntax errors, unreadable files and text that is not UTF-8 raise `RuleError` with one `Problem`
naming the file and, when known, the line.

Problems never quote the file's text: rule files hold confidential phrases, and these messages
reach server logs and `/admin/status` when rules are reloaded. PyYAML's own wording is kept, but
what it quotes from the document (an alias or anchor name, a tag handle, a value that is not a
number) is replaced by `(text not shown)`, except single ASCII characters (`'\\t'`, `':'`) and
token names (`'<block end>'`); tags are named only when they are standard ones (`!!binary`).
The `RuleError` is raised without PyYAML's exception (or the decoding error) as its cause:
that one prints the offending line in a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, SequenceNode

from intercept.errors import Problem, RuleError

__all__ = [
    "MAX_VALUES",
    "DuplicateKey",
    "LocatedDict",
    "LocatedList",
    "YamlDocument",
    "locate",
    "parse_yaml",
    "read_yaml_file",
]

_STANDARD_TAG = "tag:yaml.org,2002:"
_MERGE_TAG = _STANDARD_TAG + "merge"
_ALLOWED_TAGS = frozenset(
    _STANDARD_TAG + name for name in ("str", "int", "float", "bool", "null", "map", "seq", "merge")
)
MAX_VALUES = 2_000_000
"""Most values a document may hold once aliases are expanded (a guard against alias bombs)."""


class LocatedDict(dict[Any, Any]):
    """A YAML mapping: a plain `dict` that also knows its `line` and each key's line."""

    __slots__ = ("key_lines", "line")

    def __init__(self, *, line: int) -> None:
        super().__init__()
        self.line: int = line
        self.key_lines: dict[Any, int] = {}


class LocatedList(list[Any]):
    """A YAML sequence: a plain `list` that also knows its `line` and each item's line."""

    __slots__ = ("item_lines", "line")

    def __init__(self, *, line: int) -> None:
        super().__init__()
        self.line: int = line
        self.item_lines: list[int] = []


@dataclass(frozen=True, slots=True)
class DuplicateKey:
    """A key written twice in the same mapping."""

    key: Any
    line: int  # where it is written again
    first_line: int  # where it was first written
    mapping: LocatedDict  # that mapping, in the loaded data

    @property
    def message(self) -> str:
        """The curator-facing description, e.g. `duplicate key 'terms' (first at line 7)`."""
        return f"duplicate key {_quote(self.key)} (first at line {self.first_line})"


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """What a YAML text held: its data and any repeated keys."""

    data: Any  # None when the text is empty
    duplicate_keys: tuple[DuplicateKey, ...]  # in the order of their lines


def _quote(key: Any) -> str:
    return f"'{key}'" if isinstance(key, str) else repr(key)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


_KNOWN_TAGS = frozenset((
    "binary", "set", "omap", "pairs", "timestamp", "value", "yaml", "merge",
    "str", "int", "float", "bool", "null", "map", "seq",
))  # fmt: skip
_PYTHON_TAGS = frozenset(
    "python/" + kind
    for kind in (
        "name", "module", "object", "object/new", "object/apply", "none", "bool", "str",
        "unicode", "bytes", "int", "long", "float", "complex", "list", "tuple", "dict",
    )
)  # fmt: skip
_NOT_SHOWN = "(text not shown)"
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_SHOWABLE = re.compile(r"[ -~]|\\(?:[\\'a-z0-9]|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})|<[a-z ]+>")
"""What PyYAML may quote in a message: one ASCII character, its escape, or a token name."""


def _tag_text(tag: str) -> str:
    """`tag !!binary` for a standard tag; a custom or unknown tag is not quoted (its text is
    the curator's and could be a phrase)."""
    name = tag.removeprefix(_STANDARD_TAG) if tag.startswith(_STANDARD_TAG) else None
    if name in _KNOWN_TAGS:
        return f"tag !!{name}"
    kind, colon, _ = (name or "").partition(":")
    if kind in _PYTHON_TAGS:
        return f"tag !!{kind}{':...' if colon else ''}"
    return "a custom tag " + _NOT_SHOWN


def _without_text(message: str) -> str:
    """PyYAML's `message` with whatever it quotes from the document replaced by
    `(text not shown)`, unless it is one ASCII character or a token name (see the module
    docstring)."""

    def replace(found: re.Match[str]) -> str:
        return found[0] if _SHOWABLE.fullmatch(found[0][1:-1]) else _NOT_SHOWN

    return _QUOTED.sub(replace, message)


def _not_a(kind: str, node: yaml.ScalarNode) -> yaml.constructor.ConstructorError:
    problem = f"a value tagged {_tag_text(node.tag).removeprefix('tag ')} is not {kind}"
    return yaml.constructor.ConstructorError(None, None, problem, node.start_mark)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    try:
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text, 10)
    except ValueError:
        raise _not_a("an integer", node) from None


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    try:
        return float(loader.construct_yaml_float(node))
    except ValueError:
        raise _not_a("a number", node) from None


def _construct_bool(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool:
    text = str(loader.construct_scalar(node)).lower()
    if text not in ("true", "false"):
        raise _not_a("true or false", node)
    return text == "true"


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many values `node` holds once aliases are expanded; checks tags and alias cycles."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if node.tag not in _ALLOWED_TAGS:
        problem = f"{_tag_text(node.tag)} is not allowed"
        raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark)
    if key in open_nodes:
        problem = "found an alias inside the node it refers to"
        raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark)
    open_nodes.add(key)
    children: list[yaml.Node] = []
    if isinstance(node, MappingNode):
        children = [child for pair in node.value for child in pair]
    elif isinstance(node, SequenceNode):
        children = list(node.value)
    sizes[key] = 1 + sum(_expanded_size(child, sizes, open_nodes) for child in children)
    open_nodes.discard(key)
    return sizes[key]


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core scalars, located containers and duplicate-key records."""

    yaml_implicit_resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}  # noqa: RUF012

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicate_keys: list[DuplicateKey] = []

    def construct_document(self, node: yaml.Node) -> Any:
        """Check tags, alias cycles and expanded size before building anything."""
        if _expanded_size(node, {}, set()) > MAX_VALUES:
            problem = f"more than {MAX_VALUES:,} values once aliases are expanded"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark)
        return super().construct_document(node)

    def construct_located_mapping(self, node: MappingNode) -> Iterator[LocatedDict]:
        mapping = LocatedDict(line=_line(node))
        yield mapping
        written = {id(key_node) for key_node, _ in node.value if key_node.tag != _MERGE_TAG}
        self.flatten_mapping(node)
        first_lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node)
            if not isinstance(key, Hashable):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found a key that is not a plain value",
                    key_node.start_mark,
                )
            line = _line(key_node)
            if id(key_node) in written:
                if key in first_lines:
                    self.duplicate_keys.append(
                        DuplicateKey(key, line, first_lines[key], mapping),
                    )
                else:
                    first_lines[key] = line
            mapping[key] = self.construct_object(value_node)
            mapping.key_lines[key] = line

    def construct_located_sequence(self, node: SequenceNode) -> Iterator[LocatedList]:
        sequence = LocatedList(line=_line(node))
        yield sequence
        for item_node in node.value:
            sequence.append(self.construct_object(item_node))
            sequence.item_lines.append(_line(item_node))


_StrictLoader.add_constructor("tag:yaml.org,2002:map", _StrictLoader.construct_located_mapping)
_StrictLoader.add_constructor("tag:yaml.org,2002:seq", _StrictLoader.construct_located_sequence)
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_StrictLoader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
_StrictLoader.add_implicit_resolver(_MERGE_TAG, re.compile(r"^(?:<<)$"), ["<"])


# The same loader over libyaml's parser, when PyYAML has it (its wheels do): reading a file of
# 50,000 rules takes about 5 s instead of 12. Its error messages are worded differently, so a
# document it refuses is read again by the pure-Python loader, whose message is reported.
def _fast_loader() -> type[_StrictLoader] | None:
    try:
        from yaml.cyaml import CParser  # type: ignore[attr-defined]
    except ImportError:  # PyYAML built without libyaml
        return None

    class _CStrictLoader(CParser, _StrictLoader):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self.duplicate_keys = []

    return _CStrictLoader


_FastLoader = _fast_loader()


def _syntax_problem(error: yaml.YAMLError, text: str, file: str) -> Problem:
    """One `invalid YAML: ...` problem from PyYAML's error, at the line it points to.

    Built from the error's parts, never `str(error)`: that prints the offending line.
    """
    if isinstance(error, yaml.reader.ReaderError):
        line = text.count("\n", 0, error.position) + 1
        message = f"character #x{error.character:04x} is not allowed in YAML text"
        return Problem(file, line, None, f"invalid YAML: {message}")
    if not isinstance(error, yaml.MarkedYAMLError):
        return Problem(file, 0, None, f"invalid YAML ({type(error).__name__})")
    mark = error.problem_mark or error.context_mark
    line = int(mark.line) + 1 if mark is not None else 0
    context = _without_text(error.context) if error.context else error.context
    if context == "expected a single document in the stream":
        message = "found a second document ('---'); a rule file holds one"
    else:
        if context and error.problem and error.context_mark is not None:
            context = f"{context} at line {int(error.context_mark.line) + 1}"
        problem = _without_text(error.problem) if error.problem else error.problem
        message = ": ".join(part for part in (context, problem) if part)
        if problem and "'\\t'" in problem:
            message += " (indent with spaces, not tabs)"
    return Problem(file, line, None, f"invalid YAML: {message}")


def _encodable(text: str) -> bool:
    """Whether libyaml can be given `text` (it takes UTF-8: lone surrogates cannot be)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_yaml(text: str, *, file: str) -> YamlDocument:
    """Load one YAML document from `text`; `file` names it in problems.

    Raises `RuleError` with one `Problem` (file, line, message `invalid YAML: ...`) when the
    text is not well-formed YAML, holds more than one document, or uses a tag other than the
    standard ones (no Python objects are ever built).
    """
    # libyaml accepts tabs where the pure-Python loader refuses them: text with a tab goes
    # the slow way, so a file is valid or not the same on every machine
    if _FastLoader is not None and "\t" not in text and _encodable(text):
        fast = _FastLoader(text)
        try:
            data = fast.get_single_data()
        except yaml.YAMLError:
            pass  # read again below for the pure-Python loader's wording
        else:
            return YamlDocument(data, tuple(sorted(fast.duplicate_keys, key=lambda d: d.line)))
        finally:
            fast.dispose()
    try:
        loader = _StrictLoader(text)
    except yaml.YAMLError as error:
        raise RuleError([_syntax_problem(error, text, file)]) from None
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as error:
        raise RuleError([_syntax_problem(error, text, file)]) from None
    finally:
        loader.dispose()
    return YamlDocument(data, tuple(sorted(loader.duplicate_keys, key=lambda dup: dup.line)))


def read_yaml_file(path: Path, *, file: str) -> YamlDocument:
    """Read `path` as UTF-8 (a leading byte-order mark is allowed) and `parse_yaml()` it.

    `file` is the name used in problems, usually the path as the user wrote it. Raises
    `RuleError` when the file cannot be read, is not UTF-8, or is not valid YAML.
    """
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise RuleError([Problem(file, 0, None, f"cannot read file: {error.strerror}")]) from error
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        problem = Problem(file, line, None, "not UTF-8 text (re-save the file as UTF-8)")
        raise RuleError([problem]) from None  # the decoding error holds the file's bytes
    return parse_yaml(text, file=file)


def locate(data: Any, path: Iterable[str | int], *, default: int = 0) -> int:
    """The line of the deepest node reachable along `path` (keys and item indexes) in `data`.

    Used to place an error reported for a path such as `("rules", 3, "action")`: the line of the
    `action` key when it exists, else the line of rule 3, else that of `rules`, else `default`.
    """
    line = data.line if isinstance(data, LocatedDict | LocatedList) else default
    node: Any = data
    for part in path:
        if isinstance(node, LocatedDict) and part in node:
            line = node.key_lines[part]
            node = node[part]
        elif isinstance(node, LocatedList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.item_lines[part]
            node = node[part]
        else:
            break
    return line
