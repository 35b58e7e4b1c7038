"""Query extraction: which route a request is, and the query texts it carries.

Every value of a repeated parameter is returned. Values are percent-decoded with `+` as a
space; invalid UTF-8 becomes U+FFFD; a value that still holds percent escapes after decoding
(double encoding) is returned decoded once more as well, so `%2563at` cannot hide `cat`.
"""

from __future__ import annotations

import codecs
import email.message
import email.parser
import email.policy
import email.utils
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, unquote_plus

from intercept.config import Route

__all__ = [
    "MAX_TEXTS",
    "CompiledRoute",
    "RouteTable",
    "UnreadableBody",
    "compile_routes",
    "decode",
    "find_route",
    "normalize_path",
    "texts_from_body",
    "texts_from_target",
]

_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
MAX_TEXTS = 64  # distinct query values per request; more is refused, not searched
_MAX_DECODES = 3


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    route: Route
    path_regex: re.Pattern[str] | None
    path: str | None = None  # the exact path, lowercased (compared with normalized paths)
    params: frozenset[str] = field(init=False)  # the route's query parameters, as a set
    form_fields: frozenset[str] = field(init=False)  # its form fields, as a set

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", frozenset(self.route.params))
        object.__setattr__(self, "form_fields", frozenset(self.route.form_fields))

    @property
    def name(self) -> str:
        return self.route.name

    @property
    def reads_body(self) -> bool:
        return bool(self.route.form_fields or self.route.json_pointers)

    def reads_body_for(self, method: str) -> bool:
        """Whether a request with this method has its body searched (the route's methods)."""
        methods = self.route.methods
        return self.reads_body and (methods is None or method in methods)

    def matches(self, path: str) -> re.Match[str] | bool:
        """Whether the normalized `path` is this route's. Every method matches: frameworks
        read query-string parameters whatever the method (`PUT /search?q=` must not pass)."""
        if self.path_regex is not None:
            return self.path_regex.search(path) or False
        return path == self.path


@dataclass(frozen=True, slots=True)
class RouteTable:
    """Compiled routes in configuration order, with what `find_route` checks first."""

    routes: tuple[CompiledRoute, ...]
    exact_paths: frozenset[str]
    has_regex: bool


def compile_routes(routes: Iterable[Route]) -> RouteTable:
    compiled = tuple(
        CompiledRoute(
            r,
            re.compile(r.path_regex) if r.path_regex else None,
            r.path.lower() if r.path is not None else None,
        )
        for r in routes
    )
    exact = frozenset(r.path for r in compiled if r.path is not None)
    return RouteTable(compiled, exact, any(r.path_regex is not None for r in compiled))


def normalize_path(raw_path: str) -> str:
    """The path as upstream servers may read it: percent-decoded, `;` parameters dropped,
    dot segments resolved, repeated and trailing slashes removed, lowercase. Only used to find
    the route; the request is forwarded exactly as received."""
    path = unquote(raw_path, errors="replace")
    segments: list[str] = []
    for segment in path.split("/"):
        segment = segment.split(";", 1)[0]
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return ("/" + "/".join(segments)).lower()


def find_route(
    table: RouteTable, raw_path: str
) -> tuple[CompiledRoute, re.Match[str] | None] | None:
    """The first route for this path (the raw path without its query string), compared after
    `normalize_path`, so `/%73earch`, `//search/` and `/Search;x` are `/search` too."""
    plain = raw_path.isascii() and "%" not in raw_path and ";" not in raw_path
    path = raw_path.lower() if plain and "//" not in raw_path and "/." not in raw_path else None
    if path is None:
        path = normalize_path(raw_path)
    elif len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    if path not in table.exact_paths and not table.has_regex:
        return None  # the common case: not a search path
    for route in table.routes:
        found = route.matches(path)
        if found:
            return route, found if isinstance(found, re.Match) else None
    return None


def decode(value: str, encoding: str = "utf-8") -> list[str]:
    """The value percent-decoded (escapes as bytes in `encoding`), and decoded again while
    escapes remain (at most 3 times)."""
    if "%" not in value:
        return [value.replace("+", " ")]  # what unquote_plus gives, without its overhead
    out = [unquote_plus(value, encoding=encoding, errors="replace")]
    while _ESCAPE.search(out[-1]) and len(out) < _MAX_DECODES:
        out.append(unquote_plus(out[-1], encoding=encoding, errors="replace"))
    return out


def texts_from_target(
    route: CompiledRoute, path_match: re.Match[str] | None, query_string: str
) -> list[str]:
    """Query texts from the request target: the route's parameters and its path group `q`."""
    texts: list[str] = []
    if path_match is not None and "q" in path_match.groupdict():
        texts += decode(path_match.group("q") or "")
    if route.params and query_string:
        texts += _values(query_string, route.params)
    return _bounded(texts)


def _values(encoded: str, wanted: frozenset[str], encoding: str = "utf-8") -> list[str]:
    """The decoded values of the `wanted` names in urlencoded `encoded` (a query string or a
    form body); `encoding`: what percent-escapes stand for (a form's declared charset)."""
    texts: list[str] = []
    pairs = encoded.split("&")
    if ";" in encoded:  # some frameworks also split on ';': read both ways
        pairs += [part for pair in pairs if ";" in pair for part in pair.split(";")]
    for pair in pairs:
        name, _, value = pair.partition("=")
        if "%" in name or "+" in name or "[" in name:
            name = _param_name(decode(name)[0])
        if name in wanted:
            texts += decode(value, encoding)
    return texts


def _param_name(name: str) -> str:
    """`q[]` and `q[0]` are `q` to PHP and Rails; names compare case-sensitively otherwise."""
    return name.split("[", 1)[0]


def _json_pointer(document: Any, pointer: str) -> Any:
    if pointer == "":
        return document
    for raw in pointer[1:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(document, dict) and part in document:
            document = document[part]
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            return None
    return document


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


class UnreadableBody(ValueError):
    """A search body that cannot be read the way the upstream might read it (an unknown
    charset, a compressed body, too many values, nesting too deep, malformed JSON, an
    ambiguous multipart form): decide it fails closed."""


def _params(header: str) -> list[tuple[str, str]]:
    """A header's `;` parameters as (lowercased name, value) pairs, repeats kept."""
    pairs = []
    for param in header.split(";")[1:]:
        name, _, value = param.partition("=")
        pairs.append((name.strip().lower(), value.strip().strip('"')))
    return pairs


_MAX_CHARSETS = 4  # declared ones per header: each is one more reading of the whole body
_QUOTED_PAIR = re.compile(r"\\(.)")


def _charsets(*content_types: str) -> list[str]:
    """Every charset a server might decode this body with: UTF-8, which many frameworks
    assume whatever is declared, and each declared one. Raises `UnreadableBody` for a charset
    that is unknown or not a text encoding (`rot13`, `zlib`), or for too many of them."""
    found = ["utf-8"]
    seen = {"utf-8"}
    for content_type in content_types:
        for name, value in _params(content_type):
            if name != "charset":
                continue
            charset = value or "utf-8"
            try:
                canonical = codecs.lookup(charset).name
            except (LookupError, ValueError):  # unknown; or a NUL or lone surrogate in it
                raise UnreadableBody("unknown charset") from None
            try:  # LookupError: a codec that is no text encoding (rot13, zlib, hex)
                b"a".decode(charset, errors="replace")
            except UnicodeError:
                pass  # no "replace" (idna): `_readings` refuses the body if it must
            except (LookupError, ValueError):
                raise UnreadableBody("not a text encoding") from None
            if canonical not in seen:
                seen.add(canonical)
                found.append(charset)
    if len(found) > 1 + _MAX_CHARSETS:
        raise UnreadableBody("too many charsets")
    return found


def _readings(data: bytes, charsets: list[str]) -> list[str]:
    """`data` decoded with each charset; invalid bytes become U+FFFD."""
    texts = []
    for charset in charsets:
        try:
            texts.append(data.decode(charset, errors="replace"))
        except (UnicodeError, ValueError):  # codecs without "replace" (idna, punycode)
            raise UnreadableBody("body not readable in its charset") from None
    return texts


def texts_from_body(route: CompiledRoute, content_type: str, body: bytes) -> list[str]:
    """Query texts from a buffered body: urlencoded or multipart form fields, JSON pointers.
    Upstreams differ in how they read a body (the declared charset or always UTF-8, a part's
    transfer encoding applied or not, the first or the last of a repeated parameter or
    header, RFC 2231 names), so every such reading is searched. At most `MAX_TEXTS` distinct
    texts.

    Raises `UnreadableBody` for a body Intercept cannot read as the upstream would, and for
    any failure to read one (a search body is never forwarded because reading it failed); a
    body of another type yields nothing (it is forwarded as it came).
    """
    try:
        return _bounded(_texts_from_body(route, content_type, body))
    except UnreadableBody:
        raise
    except RecursionError:
        raise UnreadableBody("nested too deeply") from None
    except Exception as error:  # a parser's own failure: fail closed, never a 500
        raise UnreadableBody(f"unreadable ({type(error).__name__})") from None


def _texts_from_body(route: CompiledRoute, content_type: str, body: bytes) -> list[str]:
    kind = content_type.split(";", 1)[0].strip().lower()
    fields = route.form_fields
    texts: list[str] = []
    if kind == "application/x-www-form-urlencoded" and fields:
        charsets = _charsets(content_type)
        for text in _readings(body, charsets):
            for charset in charsets:  # percent-escapes too (qs, body-parser honour it)
                texts += _bounded(_values(text, fields, charset))
    elif kind == "multipart/form-data" and fields:
        texts += _multipart_texts(content_type, body, fields)
    elif (kind == "application/json" or kind.endswith("+json")) and route.route.json_pointers:
        for document in _json_documents(content_type, body):
            for pointer in route.route.json_pointers:
                texts += _strings(_json_pointer(document, pointer))
    return texts


def _part_names(dispositions: list[str]) -> set[str]:
    """Every name a parser may give a part: from each of its Content-Disposition headers,
    each `name` parameter (the first or the last of a repeat), RFC 2231 forms (`name*=`,
    `name*0=`) decoded, quoted pairs (`"\\q"`) taken as the character or kept."""
    names: set[str] = set()
    for value in dispositions:
        holder = email.message.Message()
        holder["Content-Disposition"] = value
        for key, found in holder.get_params(header="content-disposition") or []:
            if key == "name":
                name = email.utils.collapse_rfc2231_value(found)
                names |= {_param_name(name), _param_name(_QUOTED_PAIR.sub(r"\1", name))}
        names |= {_param_name(v) for k, v in _params(value) if k == "name"}
    return names


def _multipart_texts(content_type: str, body: bytes, fields: frozenset[str]) -> list[str]:
    if sum(name == "boundary" for name, _ in _params(content_type)) > 1:
        raise UnreadableBody("more than one multipart boundary")  # parsers pick differently
    header = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", errors="replace")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
    parts = list(message.iter_parts()) if message.is_multipart() else []
    if len(parts) > MAX_TEXTS:
        raise UnreadableBody("too many parts")
    if message.defects or any(part.defects for part in parts):
        # e.g. "Content-Disposition : ..." or a junk line: lost to this parser, read by others
        raise UnreadableBody("malformed multipart")
    texts: list[str] = []
    for part in parts:
        raw_headers = [(name.lower(), str(value)) for name, value in part.raw_items()]
        names = _part_names([v for name, v in raw_headers if name == "content-disposition"])
        if not names & fields:
            continue
        if part.is_multipart() or part.get_content_maintype() == "message":
            raise UnreadableBody("a search field holding a message")  # no browser sends one
        raw = str(part.get_payload(decode=False)).encode("utf-8", errors="surrogateescape")
        payloads = [raw]
        decoded = part.get_payload(decode=True)
        if isinstance(decoded, bytes) and decoded != raw:  # a Content-Transfer-Encoding
            payloads.append(decoded)
        types = [v for name, v in raw_headers if name == "content-type"] or ["text/plain"]
        charsets = _charsets(*types)
        for payload in payloads:
            texts += _readings(payload, charsets)
    return texts


def _json_documents(content_type: str, body: bytes) -> list[Any]:
    """The body parsed as JSON with each declared charset, and as `json.loads` reads bytes
    (UTF-8, -16 or -32 by their first bytes), a UTF-8 byte order mark ignored."""
    if not body.strip():
        return []  # nothing to read, and no query in it
    texts = _readings(body, _charsets(content_type)[1:])  # declared charsets
    documents: list[Any] = []
    sources: list[str | bytes] = [body.removeprefix(codecs.BOM_UTF8), *texts]
    for source in sources:
        try:
            documents.append(json.loads(source))
        except RecursionError:
            raise UnreadableBody("JSON nested too deeply") from None
        except ValueError:
            continue
    if not documents:
        raise UnreadableBody("not valid JSON")  # the upstream cannot read it as we would
    return documents


def _bounded(texts: list[str]) -> list[str]:
    distinct = list(dict.fromkeys(texts))
    if len(distinct) > MAX_TEXTS:
        raise UnreadableBody("too many query values")
    return distinct
