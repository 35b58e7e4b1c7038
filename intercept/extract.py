"""Query extraction: which route a request is, and the query texts it carries.

Every value of a repeated parameter is returned. Values are percent-decoded with `+` as a
space; invalid UTF-8 becomes U+FFFD; a value that still holds percent escapes after decoding
(double encoding) is returned decoded once more as well, so `%2563at` cannot hide `cat`.
"""

from __future__ import annotations

import email.parser
import email.policy
import functools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from intercept.config import Route

__all__ = ["CompiledRoute", "compile_routes", "decode", "find_route", "texts_from_body",
           "texts_from_target"]  # fmt: skip

_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_MAX_DECODES = 3


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    route: Route
    path_regex: re.Pattern[str] | None

    @property
    def name(self) -> str:
        return self.route.name

    @property
    def reads_body(self) -> bool:
        return bool(self.route.form_fields or self.route.json_pointers)

    def matches(self, method: str, path: str) -> re.Match[str] | bool:
        allowed = self.route.methods
        if method not in allowed and not (method == "HEAD" and "GET" in allowed):
            return False
        if self.path_regex is not None:
            return self.path_regex.search(path) or False
        return path == self.route.path


def compile_routes(routes: Iterable[Route]) -> tuple[CompiledRoute, ...]:
    return tuple(
        CompiledRoute(r, re.compile(r.path_regex) if r.path_regex else None) for r in routes
    )


def find_route(
    routes: Sequence[CompiledRoute], method: str, raw_path: str
) -> tuple[CompiledRoute, re.Match[str] | None] | None:
    """The first route for this method and path (the path without its query string)."""
    if raw_path not in _exact_paths(tuple(routes)) and not _has_regex(tuple(routes)):
        return None  # the common case: not a search path
    for route in routes:
        found = route.matches(method, raw_path)
        if found:
            return route, found if isinstance(found, re.Match) else None
    return None


@functools.cache
def _exact_paths(routes: tuple[CompiledRoute, ...]) -> frozenset[str]:
    return frozenset(r.route.path for r in routes if r.route.path is not None)


@functools.cache
def _has_regex(routes: tuple[CompiledRoute, ...]) -> bool:
    return any(r.path_regex is not None for r in routes)


def decode(value: str) -> list[str]:
    """The value percent-decoded, and decoded again while escapes remain (at most 3 times)."""
    out = [unquote_plus(value, encoding="utf-8", errors="replace")]
    while _ESCAPE.search(out[-1]) and len(out) < _MAX_DECODES:
        out.append(unquote_plus(out[-1], encoding="utf-8", errors="replace"))
    return out


def texts_from_target(
    route: CompiledRoute, path_match: re.Match[str] | None, query_string: str
) -> list[str]:
    """Query texts from the request target: the route's parameters and its path group `q`."""
    texts: list[str] = []
    if path_match is not None and "q" in path_match.groupdict():
        texts += decode(path_match.group("q") or "")
    wanted = set(route.route.params)
    if wanted and query_string:
        for pair in query_string.split("&"):
            name, _, value = pair.partition("=")
            if decode(name)[0] in wanted:
                texts += decode(value)
    return texts


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


def texts_from_body(route: CompiledRoute, content_type: str, body: bytes) -> list[str]:
    """Query texts from a buffered body: urlencoded or multipart form fields, JSON pointers.
    A body that cannot be parsed yields nothing (it is forwarded as it came)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    fields = set(route.route.form_fields)
    texts: list[str] = []
    if kind == "application/x-www-form-urlencoded" and fields:
        text = body.decode("utf-8", errors="replace")
        texts += texts_from_target(
            CompiledRoute(route.route.model_copy(update={"params": tuple(fields)}), None),
            None,
            text,
        )
    elif kind == "multipart/form-data" and fields:
        header = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", errors="replace")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
        for part in message.iter_parts() if message.is_multipart() else ():
            if part.get_param("name", header="content-disposition") in fields:
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    charset = part.get_content_charset() or "utf-8"
                    texts.append(payload.decode(charset, errors="replace"))
    elif (kind == "application/json" or kind.endswith("+json")) and route.route.json_pointers:
        try:
            document = json.loads(body.decode("utf-8", errors="replace"))
        except ValueError:
            return []
        for pointer in route.route.json_pointers:
            texts += _strings(_json_pointer(document, pointer))
    return texts
