"""The rule file format as pydantic models, and its JSON Schema for editors.

The models only read and check what a curator wrote; `intercept.rules.rulefile` turns them into
plain `RuleSpec`s and adds the checks that need more than one rule or file: `category` and
`language` taken from `defaults`, and ids unique across everything loaded. Every model forbids
unknown keys and is frozen. A key may be left out to use the default, but not written with an empty
value.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from intercept.rules.rulespec import Action, MatchMode

__all__ = [
    "FIELD_NAMES",
    "PATTERN_MEANINGS",
    "DefaultsModel",
    "ExamplesModel",
    "ListModel",
    "RuleFileModel",
    "RuleModel",
    "field_names_at",
    "phrase_kind_problem",
    "rules_json_schema",
]

RULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
CATEGORY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
TEXT_PATTERN = r"\S"

PATTERN_MEANINGS: Mapping[str, str] = {
    RULE_ID_PATTERN: (
        "1 to 64 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"
    ),
    CATEGORY_PATTERN: (
        "1 to 32 lowercase letters, digits, '_' or '-', starting with a letter or digit"
    ),
    LANGUAGE_PATTERN: "a BCP 47 language tag such as 'en', 'fi' or 'pt-BR'",
    DATE_PATTERN: "a date written YYYY-MM-DD",
    TEXT_PATTERN: "text with at least one non-space character",
}
"""What each pattern means in words, for error messages (keys are the patterns used above)."""


def _calendar_date(text: str) -> str:
    try:
        date.fromisoformat(text)
    except ValueError:
        raise ValueError("must be a real calendar date written YYYY-MM-DD") from None
    return text


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("must not be empty (leave the key out to use the default)")
    return value


Text = Annotated[str, Field(pattern=TEXT_PATTERN)]
MAX_PHRASE_LENGTH = 500
Phrase = Annotated[
    str,
    Field(
        pattern=TEXT_PATTERN,
        max_length=MAX_PHRASE_LENGTH,
        description="Words as a searcher types them; matched after normalization.",
    ),
]
PhraseGroup = Annotated[tuple[Phrase, ...], Field(min_length=1)]
RuleId = Annotated[
    str,
    Field(pattern=RULE_ID_PATTERN, description="Unique across every rule file loaded together."),
]
Category = Annotated[
    str,
    Field(
        pattern=CATEGORY_PATTERN,
        description="Bounded label used in counts and to choose the page.",
    ),
]
Language = Annotated[
    str,
    Field(
        pattern=LANGUAGE_PATTERN,
        description="BCP 47 tag; the page language when this rule matches.",
    ),
]
UpdatedDate = Annotated[
    str,
    Field(pattern=DATE_PATTERN, json_schema_extra={"format": "date"}),
    AfterValidator(_calendar_date),
]


def phrase_kind_problem(keys: Collection[str]) -> str | None:
    """Why a rule with these keys does not name exactly one of `terms` and `all_of`, or None."""
    if "terms" in keys and "all_of" in keys:
        return "use either 'terms' or 'all_of', not both"
    if "terms" not in keys and "all_of" not in keys:
        return "needs 'terms' or 'all_of'"
    return None


class ListModel(BaseModel):
    """The `list:` header: where the rules of this file come from."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="List")

    name: Text = Field(description="Short name of the list, e.g. 'demo'.")
    source: Text = Field(description="Who curates the list, e.g. a hotline partner.")
    updated: UpdatedDate = Field(description="Date of the list's last update, YYYY-MM-DD.")


class DefaultsModel(BaseModel):
    """Values for rules of this file that leave a field out."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Defaults")

    category: Category | None = None
    action: Action | None = None
    language: Language | None = None
    match: MatchMode | None = None

    _reject_null = field_validator("*", mode="before")(_not_null)


class ExamplesModel(BaseModel):
    """Queries the rule must match and must not match; `intercept check` runs them."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Examples")

    match: tuple[Phrase, ...] = ()
    no_match: tuple[Phrase, ...] = ()


class RuleModel(BaseModel):
    """One rule: `terms` (any phrase) or `all_of` (one phrase from every group)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="Rule",
        json_schema_extra={"oneOf": [{"required": ["terms"]}, {"required": ["all_of"]}]},
    )

    id: RuleId
    terms: Annotated[tuple[Phrase, ...], Field(min_length=1)] = Field(
        default=(), description="The rule matches a query containing any of these phrases."
    )
    all_of: Annotated[tuple[PhraseGroup, ...], Field(min_length=1)] = Field(
        default=(),
        description="The rule matches a query containing one phrase from every group.",
    )
    unless: tuple[Phrase, ...] = Field(
        default=(), description="The rule never matches a query containing one of these."
    )
    category: Category | None = None
    action: Action | None = Field(
        default=None, description="block, warn or shadow; default from `defaults`, else block."
    )
    language: Language | None = None
    match: MatchMode | None = Field(
        default=None,
        description="word, prefix or substring; default from `defaults`, else word.",
    )
    examples: ExamplesModel = ExamplesModel()
    status: Literal["active", "disabled"] = Field(
        default="active",
        description="disabled: validated but never matched (kept in the file, off for now).",
    )
    expires: UpdatedDate | None = Field(
        default=None,
        description="YYYY-MM-DD: from this day on (UTC) the rule is no longer matched.",
    )

    _reject_null = field_validator("category", "action", "language", "match", mode="before")(
        _not_null
    )

    @model_validator(mode="after")
    def _one_kind_of_phrases(self) -> Self:
        problem = phrase_kind_problem(self.model_fields_set)
        if problem:
            raise ValueError(problem)
        return self


class RuleFileModel(BaseModel):
    """A whole rule file: `list`, optional `defaults`, and `rules`."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Intercept rule file")

    list_section: ListModel = Field(alias="list")
    defaults: DefaultsModel = DefaultsModel()
    rules: Annotated[tuple[RuleModel, ...], Field(min_length=1)]


def _all_field_names() -> frozenset[str]:
    models: tuple[type[BaseModel], ...] = (
        RuleFileModel, ListModel, DefaultsModel, RuleModel, ExamplesModel,
    )  # fmt: skip
    return frozenset(
        info.alias or name for model in models for name, info in model.model_fields.items()
    )


FIELD_NAMES = _all_field_names()
"""Every key the format knows, at any level (`list`, `terms`, `no_match`, ...): the only keys
that problems quote, since any other key a curator wrote could be a phrase."""


def field_names_at(path: Sequence[str | int]) -> tuple[str, ...]:
    """The keys allowed in the mapping found at `path` of a rule file, as written in YAML.

    `field_names_at(("rules", 0))` gives the rule fields, `field_names_at(())` the top-level
    keys; a path that leads to no mapping gives `()`. Used to suggest a fix for unknown keys.
    """
    model: type[BaseModel] | None = RuleFileModel
    for part in path:
        if model is None:
            return ()
        if isinstance(part, int):
            continue
        fields = {info.alias or name: info for name, info in model.model_fields.items()}
        model = _model_in(fields[part].annotation) if part in fields else None
    if model is None:
        return ()
    return tuple(info.alias or name for name, info in model.model_fields.items())


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and not get_args(annotation):
        return annotation if issubclass(annotation, BaseModel) else None
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _for_editors(schema: Any, *, in_properties: bool = False) -> Any:
    """Drop pydantic's `default` values and `null` alternatives from a generated schema.

    Fields that may be left out are typed `X | None` with default None so the models can tell
    "left out" from "set"; a written null is refused, so editors should offer only `X`.
    """
    if isinstance(schema, dict):
        variants = schema.get("anyOf")
        if not in_properties and isinstance(variants, list) and {"type": "null"} in variants:
            kept = [variant for variant in variants if variant != {"type": "null"}]
            rest = {key: value for key, value in schema.items() if key != "anyOf"}
            schema = {**rest, **kept[0]} if len(kept) == 1 else {**rest, "anyOf": kept}
        return {
            key: _for_editors(value, in_properties=key == "properties" and not in_properties)
            for key, value in schema.items()
            if in_properties or key != "default"
        }
    if isinstance(schema, list):
        return [_for_editors(item) for item in schema]
    return schema


def rules_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a rule file, for editors and the YAML language server.

    It checks every field's form; two rules need the whole rule set and are checked only by
    `intercept check`: ids unique across files, and `category`/`language` present on each rule
    or under `defaults`.
    """
    generated: dict[str, Any] = _for_editors(RuleFileModel.model_json_schema(by_alias=True))
    generated.pop("title", None)
    generated.pop("description", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Intercept rule file",
        "description": (
            "Keyword rules for Intercept: a `list` header, optional `defaults` and `rules`, each "
            "with an `id` and either `terms` or `all_of`."
        ),
        **generated,
    }
