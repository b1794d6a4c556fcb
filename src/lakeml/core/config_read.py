"""Reading a config file into one mapping for the sections in `lakeml.core.config` to validate.

The YAML file laid over its preset, `--set` overrides applied and environment variables
expanded, and the form of it that may be shown (secrets hidden).
"""

from __future__ import annotations

import os
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from lakeml.core.errors import LakemlError
from lakeml.core.secrets import REDACTED, is_secret_name, redact_mapping, secret_values


@dataclass(frozen=True)
class Resolved:
    """A config file with its overrides and environment variables applied."""

    data: dict[str, Any]  # what the sections are validated from
    # The same with every value taken from the environment, and every secret, as `***`: what
    # may be logged (MLflow's config.yaml) and hashed (the config digest).
    shown: dict[str, Any]
    secrets: frozenset[str]  # text no message may show (see lakeml.core.secrets)


def read_mapping(
    path: str | os.PathLike[str],
    overrides: list[str] | None,
    free_form: frozenset[tuple[str, ...]] = frozenset(),
) -> Resolved:
    """The YAML file's mapping with `key=value` overrides applied and env vars expanded.

    `free_form` holds the paths of mappings with free-text keys (`spark.conf`): an override
    key continues there as one key, dots and all (`spark.conf.spark.hadoop.fs.s3a.endpoint`).
    """
    data = _with_preset(Path(path), _read_yaml(Path(path)))
    for assignment in overrides or []:
        _apply_override(data, assignment, free_form)
    env_secrets: set[str] = set()
    data, shown = _interpolate(data, "", env_secrets)
    storage, shown_storage = data.get("storage"), shown.get("storage")
    root = storage.get("root") if isinstance(storage, dict) else None
    # A relative root is from the working directory, fixed once so every path agrees.
    if isinstance(root, str) and root and "://" not in root and not root.startswith("/"):
        storage["root"] = str(Path(root).resolve())
        if isinstance(shown_storage, dict) and shown_storage.get("root") == root:
            shown_storage["root"] = storage["root"]
    secrets = frozenset(env_secrets | secret_values(data))
    return Resolved(data, redact_mapping(shown, secrets), secrets)


# The presets lakeml ships (conf/presets links here).
PRESETS = Path(__file__).resolve().parents[1] / "presets"


def _with_preset(p: Path, data: dict[str, Any]) -> dict[str, Any]:
    """`data` laid over the preset its `preset` key names (`presets/<name>.yaml` beside the
    file, else one lakeml ships): mappings merge key by key, any other value of the file
    replaces the preset's."""
    name = data.get("preset")
    if not name:
        return data
    folders = [p.parent / "presets", PRESETS]
    found = {x.stem: x for f in reversed(folders) if f.is_dir() for x in f.glob("*.yaml")}
    if not isinstance(name, str) or name not in found:
        raise LakemlError(
            f"config key 'preset': no preset {name!r} (available: {', '.join(sorted(found))}); "
            f"presets are read from {str(folders[0])!r} and {str(PRESETS)!r}"
        )
    base = _read_yaml(found[name])
    if "preset" in base:
        raise LakemlError(f"preset {name!r} must not name a preset itself")
    return _merged(base, data)


def _merged(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(p: Path) -> dict[str, Any]:
    name = str(p)
    if not p.is_file():
        raise LakemlError(f"config file {name!r} not found; pass --conf conf/local.yaml")
    try:
        raw = p.read_bytes()
        text = raw.decode("utf-8-sig")
    except OSError as exc:
        raise LakemlError(f"config file {name!r} cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise LakemlError(
            f"config file {name!r} is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line "
            f"{line}); save it as UTF-8"
        ) from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = " ".join(f"{exc.context or ''} {exc.problem or ''}".split())
        raise LakemlError(f"config file {name!r} is not valid YAML{where}: {problem}") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: a date-like 2018-13-01
        message = " ".join(str(exc).split())
        raise LakemlError(f"config file {name!r} is not valid YAML: {message}") from None
    if not isinstance(data, dict):
        raise LakemlError(f"config file {name!r} must hold a mapping of sections")
    return data


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _interpolate(value: Any, key: str, secrets: set[str]) -> tuple[Any, Any]:
    """`value` with `${VAR}` expanded, and the same with each expansion from the environment
    as `***`. The text of a variable whose name says it is a secret goes into `secrets`."""
    if isinstance(value, dict):
        pairs = {
            k: _interpolate(v, f"{key}.{k}" if key else str(k), secrets) for k, v in value.items()
        }
        return {k: p[0] for k, p in pairs.items()}, {k: p[1] for k, p in pairs.items()}
    if isinstance(value, list):
        items = [_interpolate(v, f"{key}[{i}]", secrets) for i, v in enumerate(value)]
        return [p[0] for p in items], [p[1] for p in items]
    if not isinstance(value, str):
        return value, value

    def expand(match: re.Match[str], shown: bool) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            if is_secret_name(name):
                secrets.add(os.environ[name])
            return REDACTED if shown else os.environ[name]
        if default is not None:
            return default
        raise LakemlError(
            f"config key {key!r} refers to environment variable ${{{name}}}, which is not set; "
            f"export it or write ${{{name}:-default}}"
        )

    text = _ENV_REF.sub(lambda m: expand(m, shown=False), value)
    shown = _ENV_REF.sub(lambda m: expand(m, shown=True), value)
    whole = _ENV_REF.fullmatch(value)
    if whole is None:  # no reference, or text around one: text, as YAML would read it
        return text, shown
    typed = _scalar(text)
    return typed, REDACTED if whole.group(1) in os.environ else typed


def _scalar(text: str) -> Any:
    """What YAML reads from `text` when that loses nothing of it: true or false, a whole number
    written plainly, a decimal number (1e3 too). Anything else stays text: 017, 0x1F and 1_000
    (YAML would change their digits), yes and no, null, dates, lists and mappings."""
    plain = text.strip()
    if _EXPONENT.fullmatch(plain):
        return float(plain)
    try:
        value = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError):
        return text
    if isinstance(value, bool):
        return value if plain.lower() in ("true", "false") else text
    if isinstance(value, int):
        return value if str(value) == plain else text
    if isinstance(value, float):
        return value if not re.search(r"[_:]", plain) else text
    return text


def free_form_keys(
    model: type[BaseModel], prefix: tuple[str, ...] = ()
) -> frozenset[tuple[str, ...]]:
    """Paths of the mappings under `model` whose keys are free text (`("spark", "conf")`)."""
    found: set[tuple[str, ...]] = set()
    for name, field in model.model_fields.items():
        node = field.annotation
        while typing.get_origin(node) is typing.Annotated:
            node = typing.get_args(node)[0]
        if typing.get_origin(node) is dict:
            found.add((*prefix, name))
        elif isinstance(node, type) and issubclass(node, BaseModel):
            found |= free_form_keys(node, (*prefix, name))
    return frozenset(found)


def _apply_override(
    data: dict[str, Any], assignment: str, free_form: frozenset[tuple[str, ...]]
) -> None:
    """Set one `dotted.key=value`. A number after a list's key picks one of its items
    (`train.models.0.grid.maxIter=[20]`); the item must exist."""
    if "=" not in assignment:
        raise LakemlError(f"--set {assignment!r}: expected dotted.key=value")
    key, _, text = assignment.partition("=")
    parts = key.strip().split(".")
    for i in range(1, len(parts)):
        if tuple(parts[:i]) in free_form:  # the rest is one key: spark.conf.<spark key>
            parts = [*parts[:i], ".".join(parts[i:])]
            break
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        node = _child(node, part, key, parts[:depth])
    if isinstance(node, list):
        index = _index(node, parts[-1], key, parts[:-1])
        node[index] = _yaml_value(text, key)
    else:
        node[parts[-1]] = _yaml_value(text, key)


def _child(node: Any, part: str, key: str, above: list[str]) -> Any:
    """The section or list item `part` under `node` (a missing section is created)."""
    if isinstance(node, list):
        child = node[_index(node, part, key, above)]
    else:
        child = node.setdefault(part, {})
    if not isinstance(child, dict | list):
        raise LakemlError(f"--set {key}: {part!r} is not a section")
    return child


def _index(items: list[Any], part: str, key: str, above: list[str]) -> int:
    """`part` as an index of `items`, the list at the dotted key `above`."""
    where = ".".join(above)
    if not part.isdigit():
        raise LakemlError(f"--set {key}: {where} is a list; pick an item by number ({where}.0)")
    if int(part) >= len(items):
        raise LakemlError(
            f"--set {key}: {where} has {len(items)} item(s), numbered from 0; "
            f"to replace the whole list, --set {where}=[...]"
        )
    return int(part)


def _yaml_value(text: str, key: str) -> Any:
    # YAML parsing gives ints, floats, bools and lists their types: --set train.seed=7
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except ValueError:  # a date-like 2018-13-01; validation then names the key
        return text
    except yaml.YAMLError:
        shown = REDACTED if is_secret_name(key) else repr(text)
        raise LakemlError(f"--set {key}: {shown} is not a YAML value; quote it") from None
