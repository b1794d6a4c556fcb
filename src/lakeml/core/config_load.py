"""What the config sections in `lakeml.core.config` are made of, apart from the sections.

The value types the sections share, their base class, and pydantic's errors as one line naming
each dotted key. Reading a file into the mapping they are validated from is `config_read`'s.
"""

from __future__ import annotations

import datetime
import re
import typing
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from lakeml.core.errors import LakemlError

# Problems that quote the value they were given; the others say all there is to say.
_PROBLEMS = {
    "int_type": "must be a whole number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a section (a mapping)",
    "model_attributes_type": "must be a section (a mapping)",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be greater than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
}


def _text(value: Any) -> Any:
    """Where text is expected, YAML's dates (2024-01-31) and numbers (8) are text too."""
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


def _date(value: str) -> str:
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            datetime.date.fromisoformat(value)
            return value
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a date; write it as YYYY-MM-DD")


Text = Annotated[str, BeforeValidator(_text)]
# A Spark conf value: Spark takes strings, so YAML's `true` is "true", as spark-submit's
# --conf would pass it.
ConfText = Annotated[
    str, BeforeValidator(lambda v: str(v).lower() if isinstance(v, bool) else _text(v))
]
NonEmpty = Annotated[Text, Field(min_length=1)]
IsoDate = Annotated[Text, AfterValidator(_date)]
OptionalDate = Annotated[Text, AfterValidator(lambda v: v and _date(v))]
Fraction = Annotated[float, Field(ge=0, le=1)]
Percent = Annotated[float, Field(gt=0, le=100)]

# The Spark types a column of a customer table may be cast to, as `DataType.simpleString()`
# names, and the other names Spark SQL gives them (any case is accepted). Only these reach
# Spark, never the text written in the config: a type is not a place for SQL.
SPARK_TYPES = (
    "string", "boolean", "tinyint", "smallint", "int", "bigint", "float", "double", "date",
    "timestamp", "timestamp_ntz",
)  # fmt: skip
_TYPE_ALIASES = {
    "byte": "tinyint", "short": "smallint", "integer": "int", "long": "bigint", "real": "float"
}  # fmt: skip
_DECIMAL = re.compile(r"decimal(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?")


def _spark_type(value: str) -> str:
    """The `simpleString()` of the Spark type `value` names, or a ValueError."""
    name = value.strip().lower()
    name = _TYPE_ALIASES.get(name, name)
    if name in SPARK_TYPES:
        return name
    decimal = _DECIMAL.fullmatch(name)
    if decimal:
        precision, scale = int(decimal.group(1) or 10), int(decimal.group(2) or 0)
        if 1 <= precision <= 38 and 0 <= scale <= precision:
            return f"decimal({precision},{scale})"
    raise ValueError(
        f"{value!r} is not a type a column can be cast to; use one of "
        f"{', '.join(SPARK_TYPES)} or decimal(p,s) with 1 <= p <= 38 and 0 <= s <= p"
    )


SparkType = Annotated[Text, AfterValidator(_spark_type)]


COLLECT = "collect_errors"  # load_config's context: collect every error, report once


class Section(BaseModel):
    """A config section: unknown keys are errors, values keep their YAML type (text fields
    excepted, see `Text`) and an instance never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    # Where the section sits in the file: names the keys of a section built in code.
    KEY: ClassVar[str] = ""

    @model_validator(mode="wrap")
    @classmethod
    def _one_line_errors(
        cls, data: Any, handler: ModelWrapValidatorHandler[Any], info: ValidationInfo
    ) -> Any:
        """A section built in code with a bad value raises the LakemlError load_config would."""
        if (info.context or {}).get(COLLECT):
            return handler(data)
        try:
            return handler(data)
        except ValidationError as exc:
            raise LakemlError(describe(exc, cls, cls.KEY)) from None


def rule(field: str, message: str) -> PydanticCustomError:
    """A broken cross-field rule, reported at `field` (a dotted key under the section)."""
    return PydanticCustomError("config_rule", "{message}", {"field": field, "message": message})


def describe(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> str:
    """All of a validation's errors on one line, each naming its dotted config key."""
    lines = [_describe_one(err, model, prefix) for err in exc.errors(include_url=False)]
    return "; ".join(dict.fromkeys(lines))


def _describe_one(err: Any, model: type[BaseModel], prefix: str) -> str:
    loc, kind, ctx, got = tuple(err["loc"]), err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "config_rule" and ctx.get("field"):
        loc += tuple(ctx["field"].split("."))
    key = _dotted(prefix, loc)
    if kind == "missing":
        return f"missing config key {key!r}"
    if kind == "extra_forbidden":
        section = _model_at(model, loc[:-1])
        known = f"; known keys here: {', '.join(sorted(section.model_fields))}" if section else ""
        return f"unknown config key {key!r}{known}"
    if kind == "literal_error":
        owner = _model_at(model, loc[:-1])
        field = owner.model_fields.get(str(loc[-1])) if owner else None
        noun = (field.title if field else None) or "value"
        choices = ctx["expected"].replace("'", "").replace(" or ", ", ")
        return f"config key {key!r}: unknown {noun} {got!r}; choose from {choices}"
    if kind in ("too_short", "string_too_short"):
        return f"config key {key!r}: must not be empty"
    if kind in _PROBLEMS:
        limits = {k: f"{v:g}" if isinstance(v, float) else v for k, v in ctx.items()}
        return f"config key {key!r}: {_PROBLEMS[kind].format(**limits)} (got {got!r})"
    if kind == "value_error":
        return f"config key {key!r}: {ctx['error']}"
    if kind == "config_rule":
        return f"config key {key!r}: {ctx['message']}"
    return f"config key {key!r}: {err['msg']} (got {got!r})"


def _dotted(prefix: str, loc: tuple[Any, ...]) -> str:
    key = prefix
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        elif part:
            key = f"{key}.{part}" if key else str(part)
    return key


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The section class at `loc` under `model` (None if `loc` leads somewhere else)."""
    node: Any = model
    for part in loc:
        if isinstance(part, int):
            continue  # an item of a list: its type was taken when the list was entered
        if not (isinstance(node, type) and issubclass(node, BaseModel)):
            return None
        field = node.model_fields.get(part)
        if field is None:
            return None
        node = field.annotation
        while typing.get_origin(node) in (list, typing.Annotated):
            node = typing.get_args(node)[0]
    return node if isinstance(node, type) and issubclass(node, BaseModel) else None
