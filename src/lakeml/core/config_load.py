"""What the config sections in `lakeml.core.config` are made of, apart from the sections.

Reading a file into one mapping (YAML, `--set` overrides, environment variables), the value
types the sections share, and pydantic's errors as one line naming each dotted key.
"""

from __future__ import annotations

import datetime
import os
import re
import typing
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, ValidationError
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
NonEmpty = Annotated[Text, Field(min_length=1)]
IsoDate = Annotated[Text, AfterValidator(_date)]
OptionalDate = Annotated[Text, AfterValidator(lambda v: v and _date(v))]
Fraction = Annotated[float, Field(ge=0, le=1)]
Percent = Annotated[float, Field(gt=0, le=100)]


def rule(field: str, message: str) -> PydanticCustomError:
    """A broken cross-field rule, reported at `field` (a dotted key under the section)."""
    return PydanticCustomError("config_rule", "{message}", {"field": field, "message": message})


def read_mapping(path: str | os.PathLike[str], overrides: list[str] | None) -> dict[str, Any]:
    """The YAML file's mapping with `key=value` overrides applied and env vars expanded."""
    p = Path(path)
    if not p.is_file():
        raise LakemlError(f"config file {str(p)!r} not found; pass --conf conf/local.yaml")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: a date-like 2018-13-01
        message = " ".join(str(exc).split())
        raise LakemlError(f"config file {str(p)!r} is not valid YAML: {message}") from None
    if not isinstance(data, dict):
        raise LakemlError(f"config file {str(p)!r} must hold a mapping of sections")
    for assignment in overrides or []:
        _apply_override(data, assignment)
    data = _interpolate(data, "")
    storage = data.get("storage")
    root = storage.get("root") if isinstance(storage, dict) else None
    # A relative root is from the working directory, fixed once so every path agrees.
    if isinstance(root, str) and root and "://" not in root and not root.startswith("/"):
        storage["root"] = str(Path(root).resolve())
    return data


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, f"{key}.{k}" if key else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def expand(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise LakemlError(
            f"config key {key!r} refers to environment variable ${{{name}}}, which is not set; "
            f"export it or write ${{{name}:-default}}"
        )

    return _ENV_REF.sub(expand, value)


def _apply_override(data: dict[str, Any], assignment: str) -> None:
    if "=" not in assignment:
        raise LakemlError(f"--set {assignment!r}: expected dotted.key=value")
    key, _, text = assignment.partition("=")
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise LakemlError(f"--set {key}: {part!r} is not a section")
        node = child
    # YAML parsing gives ints, floats, bools and lists their types: --set train.seed=7
    try:
        node[parts[-1]] = yaml.safe_load(text) if text.strip() else ""
    except ValueError:  # a date-like 2018-13-01; validation then names the key
        node[parts[-1]] = text
    except yaml.YAMLError:
        raise LakemlError(f"--set {key}: {text!r} is not a YAML value; quote it") from None


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
