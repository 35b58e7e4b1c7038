"""The messages folder's file formats: pydantic models for language files and resources.

`read_messages()` reads and checks every `<language>.yaml` and `resources.yaml` in a folder
and returns the validated models together with every problem found, each located by file, line
and field; `intercept.pages` renders them. The formats are documented for translators and
operators in `messages/README.md`. Every model forbids unknown keys, is frozen and strict
(`native_review: "no"` is not a boolean).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from intercept.errors import InterceptError, Problem
from intercept.rules.ruleyaml import LocatedDict, locate, read_yaml_file

__all__ = [
    "KINDS",
    "RESOURCES_FILE",
    "ErrorText",
    "LanguageFileModel",
    "MessageFiles",
    "MessagesError",
    "ResourceModel",
    "ResourcesFileModel",
    "VariantText",
    "read_messages",
]

RESOURCES_FILE = "resources.yaml"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Kind = Literal["self-help", "helpline", "therapy", "directory"]
KINDS: tuple[str, ...] = ("self-help", "helpline", "therapy", "directory")


class MessagesError(InterceptError, ValueError):
    """Messages, resources or the page template were refused; `problems` lists each one.

    Nothing is loaded from a messages folder with any problem.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        count = len(self.problems)
        head = f"messages refused: {count} problem{'s' if count != 1 else ''}"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


Text = Annotated[str, Field(min_length=1, max_length=600, pattern=r"\S")]
ShortText = Annotated[str, Field(min_length=1, max_length=120, pattern=r"\S")]
LanguageCode = Annotated[str, Field(pattern=r"^[a-z]{2,3}$")]
CountryCode = Annotated[str, Field(pattern=r"^(?:[A-Z]{2}|any)$")]
ResourceLanguage = Annotated[str, Field(pattern=r"^(?:[a-z]{2,3}|any)$")]
ResourceId = Annotated[str, Field(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$")]
Phone = Annotated[str, Field(pattern=r"^\+?[0-9][0-9 ()./-]{2,30}[0-9]$")]


_M = TypeVar("_M", bound=BaseModel)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class MetaModel(_Model):
    """Who wrote a language file and whether a native speaker has checked it."""

    language: LanguageCode
    name: ShortText
    native_review: bool
    reviewed_by: ShortText | None = None
    note: Text | None = None
    direction: Literal["ltr", "rtl"] = "ltr"

    @model_validator(mode="after")
    def _review_recorded(self) -> Self:
        if self.native_review and self.reviewed_by is None:
            raise ValueError("native_review is true: say who reviewed it in 'reviewed_by'")
        if not self.native_review and self.note is None:
            raise ValueError("native_review is false: add a 'note' on how it was translated")
        return self


class NoticeModel(_Model):
    block: ShortText
    warn: ShortText
    error: ShortText


class SurveyStrings(_Model):
    heading: ShortText
    text: Text
    button: ShortText
    # needed only with `survey.questions` configured: the form's button, the thank-you page
    send: ShortText | None = None
    thanks_title: ShortText | None = None
    thanks: Text | None = None


class HelpStrings(_Model):
    heading: ShortText
    text: Text
    phone: ShortText
    onion: ShortText
    kinds: dict[Kind, ShortText]

    @field_validator("kinds")
    @classmethod
    def _every_kind(cls, kinds: dict[str, str]) -> dict[str, str]:
        missing = [kind for kind in KINDS if kind not in kinds]
        if missing:
            raise ValueError("missing a label for " + ", ".join(missing))
        return kinds


class WarnStrings(_Model):
    heading: ShortText
    explanation: Text
    link: ShortText


class PageStrings(_Model):
    notice: NoticeModel
    skip_link: ShortText
    survey: SurveyStrings
    help: HelpStrings
    warn: WarnStrings
    footer: Text


class VariantText(_Model):
    title: ShortText
    lead: Text
    body: list[Text] = Field(min_length=1, max_length=2)


class VariantsModel(_Model):
    harm: VariantText
    legal: VariantText
    help: VariantText
    neutral: VariantText


class ErrorText(_Model):
    title: ShortText
    text: Text


class ErrorsModel(_Model):
    bad_request: ErrorText
    not_found: ErrorText
    payload_too_large: ErrorText
    uri_too_long: ErrorText
    headers_too_large: ErrorText
    bad_gateway: ErrorText
    gateway_timeout: ErrorText
    other: ErrorText


class LanguageFileModel(_Model):
    """One `messages/<language>.yaml` file."""

    meta: MetaModel
    page: PageStrings
    variants: VariantsModel
    errors: ErrorsModel


def _https_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or parts.username or _CONTROL.search(value):
        raise ValueError("must be an https:// address with a host name")
    if " " in value:
        raise ValueError("must not contain spaces")
    return value


def _valid_onion_host(host: str) -> bool:
    """True for a v3 onion address (56 base32 characters) whose checksum is right."""
    label = host.removesuffix(".onion")
    if not re.fullmatch(r"[a-z2-7]{56}", label):
        return False
    raw = base64.b32decode(label.upper())
    key, checksum, version = raw[:32], raw[32:34], raw[34]
    expected = hashlib.sha3_256(b".onion checksum" + key + bytes([version])).digest()[:2]
    return version == 3 and checksum == expected


def _onion_url(value: str) -> str:
    parts = urlsplit(value)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host.endswith(".onion") or parts.username:
        raise ValueError("must be an http:// or https:// .onion address")
    if not _valid_onion_host(host):
        raise ValueError("must be a v3 onion address with a valid checksum (check for typos)")
    return value


class ResourceModel(_Model):
    """One help resource in `resources.yaml`."""

    id: ResourceId
    name: ShortText
    url: str
    onion: str | None = None
    phone: Phone | None = None
    languages: list[ResourceLanguage] = Field(min_length=1)
    countries: list[CountryCode] = Field(min_length=1)
    kind: Kind
    verified: bool
    verified_note: Text | None = None
    note: Text

    @field_validator("id")
    @classmethod
    def _not_onion_suffix(cls, value: str) -> str:
        if value.endswith("-onion"):
            raise ValueError("must not end with '-onion' (kept for onion mirror links)")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _https_url(value)

    @field_validator("onion")
    @classmethod
    def _onion(cls, value: str | None) -> str | None:
        return None if value is None else _onion_url(value)

    @field_validator("languages", "countries")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError("lists a value twice")
        return values

    @model_validator(mode="after")
    def _verification_recorded(self) -> Self:
        if self.verified and self.verified_note is None:
            raise ValueError("verified is true: say where in 'verified_note'")
        return self


class ResourcesFileModel(_Model):
    """`resources.yaml`."""

    resources: list[ResourceModel] = Field(min_length=1)


def _path_text(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _problem(detail: ErrorDetails, data: Any, file: str) -> Problem:
    loc = tuple(detail["loc"])
    field = _path_text(loc)
    kind = detail["type"]
    if kind == "missing":
        message = f"missing required field '{field}'"
    elif kind == "extra_forbidden":
        message = f"unknown field '{field}'"
    else:
        text = detail["msg"].removeprefix("Value error, ")
        message = f"field '{field}': {text}" if field else text
    return Problem(file, locate(data, loc), None, message)


def _read_model(path: Path, model: type[_M], problems: list[Problem]) -> _M | None:
    """The file at `path` validated as `model`, or None with its problems appended."""
    name = str(path)
    try:
        document = read_yaml_file(path, file=name)
    except ValueError as error:  # RuleError: unreadable, not UTF-8, or invalid YAML
        problems.extend(getattr(error, "problems", ()) or [Problem(name, 0, None, str(error))])
        return None
    data = document.data
    for duplicate in document.duplicate_keys:
        problems.append(Problem(name, duplicate.line, None, duplicate.message))
    if not isinstance(data, LocatedDict):
        problems.append(Problem(name, locate(data, ()), None, "expected a mapping of keys"))
        return None
    try:
        result = model.model_validate(data)
    except ValidationError as error:
        problems.extend(_problem(detail, data, name) for detail in error.errors())
        return None
    return None if document.duplicate_keys else result


def _duplicate_ids(resources: ResourcesFileModel, data_path: Path, problems: list[Problem]) -> None:
    seen: dict[str, int] = {}
    for index, resource in enumerate(resources.resources):
        if resource.id in seen:
            problems.append(
                Problem(
                    str(data_path),
                    0,
                    None,
                    f"resources[{index}]: id '{resource.id}' is used twice "
                    f"(first at resources[{seen[resource.id]}])",
                )
            )
        seen.setdefault(resource.id, index)


@dataclass(slots=True)
class MessageFiles:
    """What a messages folder held: language files by language, resources, and problems."""

    texts: dict[str, LanguageFileModel] = field(default_factory=dict)
    resources: list[ResourceModel] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def read_messages(folder: Path) -> MessageFiles:
    """Read and check `resources.yaml` and every other `*.yaml` (a language file) in `folder`.

    A language file must be named after its `meta.language`. Problems are collected, not
    raised, so that a translator sees all of them at once.
    """
    found = MessageFiles()
    problems = found.problems
    resources_path = folder / RESOURCES_FILE
    resources = _read_model(resources_path, ResourcesFileModel, problems)
    if resources is not None:
        _duplicate_ids(resources, resources_path, problems)
        found.resources = list(resources.resources)
    language_files = sorted(p for p in folder.glob("*.yaml") if p.name != RESOURCES_FILE)
    if not language_files:
        problems.append(Problem(str(folder), 0, None, "no language files (<language>.yaml)"))
    for path in language_files:
        model = _read_model(path, LanguageFileModel, problems)
        if model is None:
            continue
        if model.meta.language != path.stem:
            message = (
                f"field 'meta.language': '{model.meta.language}' does not match the file "
                f"name (expected '{path.stem}')"
            )
            problems.append(Problem(str(path), 0, None, message))
            continue
        found.texts[model.meta.language] = model
    return found
