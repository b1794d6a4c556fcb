"""Typed, validated configuration loaded from `conf/<env>.yaml`.

A YAML file is merged with `--set dotted.key=value` overrides, `${ENV_VAR}` and
`${ENV_VAR:-default}` references are expanded, and the result is built into the
frozen dataclasses below. An unknown key, a missing key or a value of the wrong
type raises `LakemlError` naming the dotted key.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lakeml.core.errors import LakemlError

MODEL_TYPES = ("logistic_regression", "random_forest", "gbt")
METRICS = ("areaUnderPR", "areaUnderROC")
THRESHOLD_POLICIES = ("best_f1", "top_k")


@dataclass(frozen=True)
class StorageConfig:
    """Everything a run writes lives under `root` (a local path or a Hadoop URI)."""

    root: str


@dataclass(frozen=True)
class SparkConfig:
    master: str = "local[*]"
    app_name: str = "lakeml"
    log_level: str = "WARN"
    # Fetch the Delta jars matching the installed delta-spark through spark.jars.packages.
    # Turn off where the cluster provides them (an image, --jars or --packages).
    delta_packages: bool = True
    conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DirtConfig:
    """Rates of real-world dirt the generator injects, as fractions of events."""

    logged_out_rate: float = 0.03
    duplicate_rate: float = 0.005
    malformed_rate: float = 0.001
    missing_field_rate: float = 0.001
    bad_value_rate: float = 0.0005


@dataclass(frozen=True)
class GenerateConfig:
    users: int = 500
    days: int = 60
    start_date: str = "2018-10-01"
    seed: int = 42
    dirt: DirtConfig = field(default_factory=DirtConfig)


@dataclass(frozen=True)
class TableSourceConfig:
    """A customer snapshot table (one row per entity, e.g. the Telco CSV) read as it is.

    Columns are read as text and cast to `types` (others stay strings); blank strings are
    missing values; a row whose value cannot be cast is quarantined, not dropped.
    """

    format: str = "csv"
    options: dict[str, str] = field(default_factory=lambda: {"header": "true"})
    entity_col: str = ""
    # The date the snapshot describes, if the table has no column for it.
    snapshot_date: str = ""
    snapshot_col: str = ""
    label_col: str = ""
    positive_values: list[str] = field(default_factory=lambda: ["Yes", "yes", "1", "true"])
    types: dict[str, str] = field(default_factory=dict)
    drop_cols: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SourceConfig:
    """Where raw data is read from; relative paths are under storage.root.

    kind `events`: a folder of eventsim JSON-lines logs; kind `table`: a customer snapshot
    table (csv, parquet, delta, json) described by `table`.
    """

    kind: str = "events"
    path: str = "raw/events"
    table: TableSourceConfig = field(default_factory=TableSourceConfig)


@dataclass(frozen=True)
class TablesConfig:
    """Delta table locations; relative paths are under storage.root."""

    bronze: str = "bronze/events"
    silver: str = "silver/events"
    quarantine: str = "silver/quarantine"
    features: str = "gold/user_features"
    labels: str = "gold/churn_labels"
    scores: str = "gold/churn_scores"
    drift: str = "monitoring/feature_drift"
    checkpoints: str = "_checkpoints"


@dataclass(frozen=True)
class SnapshotConfig:
    """Snapshot dates: an explicit list, or a series every `every_days` ending at the last
    complete day in the data and starting once `min_history_days` of data exist."""

    dates: list[str] = field(default_factory=list)
    every_days: int = 7
    min_history_days: int = 7


@dataclass(frozen=True)
class FeaturesConfig:
    windows: list[int] = field(default_factory=lambda: [7, 14, 28])
    label_horizon_days: int = 14
    snapshots: SnapshotConfig = field(default_factory=SnapshotConfig)


@dataclass(frozen=True)
class ModelSpec:
    type: str
    grid: dict[str, list[Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class SplitConfig:
    """Out-of-time split: the latest labelled snapshots test, the ones before validate.

    `random` (for a table with a single snapshot) splits entities at random by fractions.
    """

    method: str = "out_of_time"
    test_snapshots: int = 1
    validation_snapshots: int = 1
    test_fraction: float = 0.2
    validation_fraction: float = 0.2


@dataclass(frozen=True)
class ThresholdConfig:
    policy: str = "best_f1"
    top_k_pct: float = 10.0


@dataclass(frozen=True)
class BaselineConfig:
    enabled: bool = True
    sample_rows: int = 200000


@dataclass(frozen=True)
class GateConfig:
    """A challenger becomes champion if it passes the absolute thresholds and beats the
    champion's `metric` on the same test window by at least `margin`."""

    metric: str = "areaUnderPR"
    margin: float = 0.01
    min_roc_auc: float = 0.7
    min_pr_auc: float = 0.2


@dataclass(frozen=True)
class TrainConfig:
    entity_col: str = "user_id"
    snapshot_col: str = "snapshot_date"
    label_col: str = "churned"
    categorical_cols: list[str] = field(default_factory=list)
    exclude_cols: list[str] = field(default_factory=list)
    split: SplitConfig = field(default_factory=SplitConfig)
    class_weight: str = "balanced"
    primary_metric: str = "areaUnderPR"
    parallelism: int = 2
    seed: int = 42
    models: list[ModelSpec] = field(default_factory=list)
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    top_k_pcts: list[float] = field(default_factory=lambda: [5.0, 10.0, 20.0])
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    gate: GateConfig = field(default_factory=GateConfig)


@dataclass(frozen=True)
class MlflowConfig:
    """Empty tracking_uri: MLFLOW_TRACKING_URI if set, else SQLite under storage.root."""

    tracking_uri: str = ""
    experiment: str = "lakeml-churn"
    registered_model: str = "lakeml-churn"
    timeout_seconds: int = 20


@dataclass(frozen=True)
class ScoreConfig:
    """Empty model_uri: models:/<registered_model>@champion."""

    model_uri: str = ""
    arrow_batch_size: int = 10000
    risk_bands: int = 10


@dataclass(frozen=True)
class MonitorConfig:
    psi_bins: int = 10
    psi_threshold: float = 0.2
    null_rate_threshold: float = 0.1


@dataclass(frozen=True)
class Config:
    storage: StorageConfig
    spark: SparkConfig = field(default_factory=SparkConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    tables: TablesConfig = field(default_factory=TablesConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    # The merged, interpolated mapping the objects were built from (for logging to MLflow).
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def path(self, relative: str) -> str:
        """Resolve a path from config: absolute paths and URIs stay, others go under root."""
        return resolve_path(self.storage.root, relative)

    def table(self, name: str) -> str:
        """Location of a Delta table named in `tables`, e.g. `cfg.table("silver")`."""
        return self.path(getattr(self.tables, name))

    @property
    def source_path(self) -> str:
        return self.path(self.source.path)

    @property
    def tracking_uri(self) -> str:
        if self.mlflow.tracking_uri:
            return self.mlflow.tracking_uri
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return os.environ["MLFLOW_TRACKING_URI"]
        root = self.storage.root
        if "://" in root and not root.startswith("file:"):
            raise LakemlError(
                f"storage.root {root!r} is not a local path, so the embedded SQLite MLflow "
                "store cannot live there: set mlflow.tracking_uri or MLFLOW_TRACKING_URI"
            )
        local = root.removeprefix("file://").removeprefix("file:")
        return f"sqlite:///{local}/mlflow/mlflow.db"

    @property
    def artifact_location(self) -> str | None:
        """Artifact root for new experiments in the embedded store (None: the server's)."""
        if self.mlflow.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"):
            return None
        return Path(self.path("mlflow/artifacts")).as_uri()

    @property
    def model_uri(self) -> str:
        return self.score.model_uri or f"models:/{self.mlflow.registered_model}@champion"

    def digest(self) -> str:
        """A short hash of the resolved config, to tag runs with."""
        text = json.dumps(self.raw, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def resolve_path(root: str, relative: str) -> str:
    """Absolute paths and URIs stay; `./x` and `../x` are from the working directory;
    anything else is under storage.root."""
    if "://" in relative or relative.startswith("/"):
        return relative.rstrip("/")
    if relative.startswith(("./", "../")):
        return str(Path(relative).resolve())
    return f"{root.rstrip('/')}/{relative.strip('/')}"


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
    node[parts[-1]] = yaml.safe_load(text) if text.strip() else ""


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise LakemlError(f"config key {key!r} must be a section (a mapping), got {value!r}")
        return _build(hint, value, key)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if value is None else _coerce(value, args[0], key)
    if origin is list:
        if not isinstance(value, list):
            raise LakemlError(f"config key {key!r} must be a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise LakemlError(f"config key {key!r} must be a mapping, got {value!r}")
        _, item = typing.get_args(hint)
        return {str(k): _coerce(v, item, f"{key}.{k}") for k, v in value.items()}
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise LakemlError(f"config key {key!r} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise LakemlError(f"config key {key!r} must be a whole number, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise LakemlError(f"config key {key!r} must be a number, got {value!r}")
    if hint is str:
        if isinstance(value, datetime.date):  # YAML reads 2024-01-31 as a date
            return value.isoformat()
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise LakemlError(f"config key {key!r} must be a string, got {value!r}")
    raise TypeError(f"unsupported config type {hint!r} at {key}")


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "raw"}
    for name in data:
        if name not in fields:
            dotted = f"{prefix}.{name}" if prefix else name
            raise LakemlError(
                f"unknown config key {dotted!r}; known keys here: {', '.join(sorted(fields))}"
            )
    kwargs = {}
    for name, f in fields.items():
        dotted = f"{prefix}.{name}" if prefix else name
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], dotted)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise LakemlError(f"missing config key {dotted!r}")
    return cls(**kwargs)


def _validate(cfg: Config) -> None:
    for i, spec in enumerate(cfg.train.models):
        if spec.type not in MODEL_TYPES:
            raise LakemlError(
                f"config key 'train.models[{i}].type': unknown model type {spec.type!r}; "
                f"choose from {', '.join(MODEL_TYPES)}"
            )
    for key, metric in (
        ("train.primary_metric", cfg.train.primary_metric),
        ("train.gate.metric", cfg.train.gate.metric),
    ):
        if metric not in METRICS:
            raise LakemlError(
                f"config key {key!r}: unknown metric {metric!r}; choose from {', '.join(METRICS)}"
            )
    if cfg.train.threshold.policy not in THRESHOLD_POLICIES:
        raise LakemlError(
            f"config key 'train.threshold.policy': unknown policy {cfg.train.threshold.policy!r}; "
            f"choose from {', '.join(THRESHOLD_POLICIES)}"
        )
    if cfg.train.split.method not in ("out_of_time", "random"):
        raise LakemlError("config key 'train.split.method' must be 'out_of_time' or 'random'")
    if cfg.train.class_weight not in ("balanced", "none"):
        raise LakemlError("config key 'train.class_weight' must be 'balanced' or 'none'")
    if cfg.source.kind not in ("events", "table"):
        raise LakemlError(
            f"config key 'source.kind': unknown kind {cfg.source.kind!r}; choose events or table"
        )
    if cfg.source.kind == "table":
        t = cfg.source.table
        for key in ("entity_col", "label_col"):
            if not getattr(t, key):
                raise LakemlError(f"config key 'source.table.{key}' is required for kind table")
        if bool(t.snapshot_date) == bool(t.snapshot_col):
            raise LakemlError(
                "config: set exactly one of 'source.table.snapshot_date' and "
                "'source.table.snapshot_col' for kind table"
            )
    if not cfg.features.windows or min(cfg.features.windows) < 1:
        raise LakemlError("config key 'features.windows' must list positive day counts")
    if cfg.features.label_horizon_days < 1:
        raise LakemlError("config key 'features.label_horizon_days' must be at least 1")


def load_config(path: str | os.PathLike[str], overrides: list[str] | None = None) -> Config:
    """Read a YAML config, apply `key=value` overrides, interpolate env vars, validate."""
    p = Path(path)
    if not p.is_file():
        raise LakemlError(f"config file {str(p)!r} not found; pass --conf conf/local.yaml")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise LakemlError(f"config file {str(p)!r} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise LakemlError(f"config file {str(p)!r} must hold a mapping of sections")
    for assignment in overrides or []:
        _apply_override(data, assignment)
    data = _interpolate(data, "")
    root = data.get("storage", {}).get("root") if isinstance(data.get("storage"), dict) else None
    if isinstance(root, str) and root and "://" not in root and not root.startswith("/"):
        data["storage"]["root"] = str(Path(root).resolve())
    cfg = _build(Config, data, "")
    cfg = dataclasses.replace(cfg, raw=data)
    if not cfg.storage.root:
        raise LakemlError("config key 'storage.root' is empty")
    _validate(cfg)
    return cfg
