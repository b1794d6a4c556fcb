"""Which model to score with: a model URI resolved to a registered version, and its signature.

Scoring needs a registered version, not just an artifact: the version's tags carry the
threshold, the entity and snapshot columns and the training lineage (`lakeml.tracking.tags`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models.model import ModelInfo
from mlflow.tracking import MlflowClient
from pyspark.sql import types as T

from lakeml.core.errors import LakemlError

# MLflow signature column types -> the Spark type the model is given, and the input types that
# convert to it without losing meaning (widening only; a string is never read as a number).
_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
SIGNATURE_TYPES: dict[str, tuple[T.DataType, tuple[type, ...]]] = {
    "long": (T.LongType(), _INTEGRAL),
    "integer": (T.IntegerType(), (T.ByteType, T.ShortType, T.IntegerType)),
    "double": (T.DoubleType(), (*_INTEGRAL, T.FloatType, T.DoubleType, T.DecimalType)),
    "float": (T.FloatType(), (T.ByteType, T.ShortType, T.IntegerType, T.FloatType)),
    "string": (T.StringType(), (T.StringType,)),
    "boolean": (T.BooleanType(), (T.BooleanType,)),
    "datetime": (T.TimestampType(), (T.DateType, T.TimestampType, T.TimestampNTZType)),
}


@dataclass(frozen=True)
class ModelRef:
    """A registered model version a URI resolved to, with the tags the contract puts on it."""

    uri: str
    name: str
    version: int
    run_id: str
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def load_uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def tag(self, key: str, default: str) -> str:
        return self.tags.get(key) or default


@dataclass(frozen=True)
class Feature:
    """One input column of the model signature."""

    name: str
    type: str

    @property
    def spark_type(self) -> T.DataType:
        return SIGNATURE_TYPES[self.type][0]


_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)$")
_VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")
_RUN_URI = re.compile(r"^runs:/(?P<run_id>[0-9a-zA-Z]+)/(?P<path>.+)$")


def parse_model_uri(uri: str) -> tuple[str, str, str]:
    """Split a model URI into (kind, first, second): ("alias", name, alias),
    ("version", name, version) or ("run", run_id, artifact_path)."""
    for kind, pattern in (("alias", _ALIAS_URI), ("version", _VERSION_URI), ("run", _RUN_URI)):
        match = pattern.match(uri.strip())
        if match:
            first, second = match.groups()
            return kind, first, second.rstrip("/")
    raise LakemlError(
        f"model URI {uri!r} is not one lakeml can score with; use models:/<name>@<alias>, "
        "models:/<name>/<version> or runs:/<run_id>/<path> (of a registered model)"
    )


def _version_ref(uri: str, mv: Any) -> ModelRef:
    return ModelRef(uri, mv.name, int(mv.version), mv.run_id or "", dict(mv.tags or {}))


def _version_for_run(client: MlflowClient, uri: str, run_id: str, path: str) -> ModelRef:
    """The registered version whose source is the model logged at `path` in run `run_id`."""
    matches = []
    for mv in client.search_model_versions(f"run_id = '{run_id}'"):
        source = mv.source or ""
        if source.startswith("models:/m-"):
            # MLflow 3 logged models: the version points at the logged model, named by its path.
            logged = client.get_logged_model(source.removeprefix("models:/"))
            if logged.name == path:
                matches.append(mv)
        elif source.rstrip("/").endswith(f"/{path}"):
            matches.append(mv)
    if not matches:
        raise LakemlError(
            f"model URI {uri!r} is not a registered model version (scoring needs the version's "
            "tags: threshold, entity column, training lineage); register it, or pass "
            "models:/<name>/<version>"
        )
    return _version_ref(uri, max(matches, key=lambda mv: int(mv.version)))


def resolve_model(client: MlflowClient, uri: str) -> ModelRef:
    """Resolve an alias, version or run URI to the registered model version it names."""
    kind, first, second = parse_model_uri(uri)
    try:
        if kind == "alias":
            return _version_ref(uri, client.get_model_version_by_alias(first, second))
        if kind == "version":
            return _version_ref(uri, client.get_model_version(first, second))
        return _version_for_run(client, uri, first, second)
    except MlflowException as exc:
        what = {
            "alias": f"alias {second!r} of registered model {first!r}",
            "version": f"version {second} of registered model {first!r}",
            "run": f"run {first!r}",
        }[kind]
        raise LakemlError(
            f"cannot score with {uri}: {what} was not found in the MLflow registry at "
            f"{mlflow.get_registry_uri()} ({exc.message}); list versions with `lakeml models`, "
            "train one with `lakeml train` or move the alias with `lakeml promote`"
        ) from None


def signature_features(info: ModelInfo, uri: str) -> list[Feature]:
    """The model's input columns and types, from its logged signature."""
    signature = info.signature
    if signature is None or not signature.inputs.has_input_names():
        raise LakemlError(
            f"model {uri} has no column signature, so its input cannot be checked; log it with "
            "signature=infer_signature(<feature columns>)"
        )
    features = []
    for spec in signature.inputs.inputs:
        type_name = getattr(spec.type, "name", str(spec.type))
        if type_name not in SIGNATURE_TYPES:
            raise LakemlError(
                f"model {uri} expects column {spec.name!r} of type {type_name}, which batch "
                f"scoring does not support; supported: {', '.join(SIGNATURE_TYPES)}"
            )
        features.append(Feature(spec.name, type_name))
    return features


def pyfunc_output(info: ModelInfo) -> str:
    """The spark_udf result type: array<double> for class probabilities (P(churn) = last
    element), double when the model returns one probability per row."""
    if info.flavors.get("python_function", {}).get("predict_fn") == "predict_proba":
        return "array<double>"
    outputs = info.signature.outputs if info.signature else None
    if outputs is None:
        return "array<double>"
    specs = outputs.inputs
    if outputs.is_tensor_spec():
        shape = specs[0].shape
        return "double" if len(shape) == 1 or shape[-1] == 1 else "array<double>"
    return "double" if len(specs) == 1 else "array<double>"


def load_model_info(ref: ModelRef, uri: str) -> tuple[ModelInfo, list[Feature]]:
    """The version's MLflow model info and input features; it must be scorable by Spark."""
    info = mlflow.models.get_model_info(ref.load_uri)
    features = signature_features(info, uri)
    if not {"spark", "python_function"} & set(info.flavors):
        raise LakemlError(
            f"model {uri} has neither a spark nor a python_function flavor; log it with "
            "mlflow.spark.log_model or a pyfunc-capable flavor"
        )
    return info, features
