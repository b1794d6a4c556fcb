"""Typed, validated configuration loaded from `conf/<env>.yaml`.

The YAML file, `--set dotted.key=value` overrides and `${ENV_VAR}` / `${ENV_VAR:-default}`
references (`lakeml.core.config_read`) are validated into frozen pydantic models: `Config`
and the sections below, and those of `config_data`, `config_train` and `config_ops` (exported
here too). Every choice, range and cross-field rule is checked in them, so a bad value fails at
load, before Spark starts, as one `LakemlError` line naming each dotted key.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PrivateAttr, ValidationError, model_validator

from lakeml.core.config_data import (
    DirtConfig,
    FeaturesConfig,
    GenerateConfig,
    SnapshotConfig,
    SourceConfig,
    TablesConfig,
    TableSourceConfig,
)
from lakeml.core.config_load import COLLECT, ConfText, NonEmpty, Text, describe, rule
from lakeml.core.config_load import Section as _Section
from lakeml.core.config_ops import (
    MonitorConfig,
    ReportConfig,
    RetrainConfig,
    ScoreConfig,
    ServeConfig,
)
from lakeml.core.config_read import free_form_keys, read_mapping
from lakeml.core.config_train import (
    METRICS,
    MODEL_TYPES,
    THRESHOLD_POLICIES,
    BaselineConfig,
    GateConfig,
    Metric,
    ModelSpec,
    ModelType,
    SplitConfig,
    ThresholdConfig,
    ThresholdPolicy,
    TrainConfig,
    XGBoostConfig,
)
from lakeml.core.errors import LakemlError
from lakeml.core.event_spec import check_features
from lakeml.core.secrets import redact_text

__all__ = [
    "METRICS",
    "MODEL_TYPES",
    "THRESHOLD_POLICIES",
    "BaselineConfig",
    "Config",
    "DirtConfig",
    "FeaturesConfig",
    "GateConfig",
    "GenerateConfig",
    "LogLevel",
    "Metric",
    "MlflowConfig",
    "ModelSpec",
    "ModelType",
    "MonitorConfig",
    "ReportConfig",
    "RetrainConfig",
    "ScoreConfig",
    "ServeConfig",
    "SnapshotConfig",
    "SourceConfig",
    "SparkConfig",
    "SplitConfig",
    "StorageConfig",
    "TableSourceConfig",
    "TablesConfig",
    "ThresholdConfig",
    "ThresholdPolicy",
    "TrainConfig",
    "XGBoostConfig",
    "load_config",
    "resolve_path",
]

# Spark's setLogLevel takes these in any case.
LogLevel = Annotated[
    Literal["ALL", "DEBUG", "ERROR", "FATAL", "INFO", "OFF", "TRACE", "WARN"],
    BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v),
]


class StorageConfig(_Section):
    """Everything a run writes lives under `root` (a local path or a Hadoop URI)."""

    KEY = "storage"
    root: NonEmpty


class SparkConfig(_Section):
    KEY = "spark"
    master: NonEmpty = "local[*]"
    app_name: NonEmpty = "lakeml"
    log_level: LogLevel = Field("WARN", title="Spark log level")
    # Fetch the Delta jars matching the installed delta-spark through spark.jars.packages.
    # Turn off where the cluster provides them (an image, --jars or --packages).
    delta_packages: bool = True
    # The JIT of a local driver lakeml launches: `quick` the JVM's quick compiler (C1) alone,
    # `full` both compilers, `auto` quick when the command's input (features and pipeline: the
    # raw source; score: the table it scores) is a local file or folder under 64 MB
    # (core.session.QUICK_JIT_MAX_BYTES), else full. No effect under spark-submit.
    jit: Literal["auto", "quick", "full"] = "auto"
    conf: dict[Text, ConfText] = Field(default_factory=dict)


class MlflowConfig(_Section):
    """Empty tracking_uri: MLFLOW_TRACKING_URI if set, else SQLite under storage.root."""

    KEY = "mlflow"
    tracking_uri: Text = ""
    experiment: NonEmpty = "lakeml-churn"
    registered_model: NonEmpty = "lakeml-churn"
    timeout_seconds: int = Field(20, gt=0)


class Config(_Section):
    # A preset under the config file's `presets/` folder the file's keys are laid over.
    preset: Text = ""
    storage: StorageConfig
    spark: SparkConfig = Field(default_factory=SparkConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    source: SourceConfig = Field(default_factory=SourceConfig)
    tables: TablesConfig = Field(default_factory=TablesConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)
    _secrets: frozenset[str] = PrivateAttr(default_factory=frozenset)

    @model_validator(mode="after")
    def _events_fit_features(self) -> Config:
        events, f = self.source.events, self.features
        if self.source.kind != "events":
            return self
        if events is None:
            raise rule(
                "source.events",
                "must describe the event log when source.kind is events (or start the config "
                "with `preset: sparkify` for eventsim logs)",
            )
        if not f.aggregations:
            raise rule("features.aggregations", "must list the features of the event log")
        if f.target is None:
            raise rule("features.target", "must say what the label is for an event log")
        problems = check_features(f.aggregations, f.target, events)
        if problems:
            key, message = problems[0]
            raise rule(f"features.{key}", message)
        pairs = (
            ("train.entity_col", self.train.entity_col, "source.events.entity", events.entity),
            ("train.label_col", self.train.label_col, "features.target.label_col",
             f.target.label_col),
        )  # fmt: skip
        for key, value, other, want in pairs:
            if value != want:
                raise rule(key, f"must equal {other} ({want!r}), got {value!r}")
        return self

    @model_validator(mode="after")
    def _budget_is_measured(self) -> Config:
        if self.report.budget_pct not in self.train.top_k_pcts:
            raise rule(
                "report.budget_pct",
                f"must be one of train.top_k_pcts {self.train.top_k_pcts} (whose test-window "
                f"precision training measures), got {self.report.budget_pct:g}",
            )
        return self

    @property
    def raw(self) -> dict[str, Any]:
        """The merged, interpolated mapping the sections were built from, as it may be shown
        (logged to MLflow): values from the environment and secrets are `***`."""
        return self._raw

    def redact(self, text: str) -> str:
        """`text` (a message, a summary line) without this config's secrets or URI passwords."""
        return redact_text(text, self._secrets)

    def __eq__(self, other: object) -> bool:
        # Equal sections are an equal config, however the file that gave them was written.
        if not isinstance(other, Config):
            return NotImplemented
        return self.__dict__ == other.__dict__

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
        """A short hash of `raw`, to tag runs with: of the config.yaml logged beside it, so a
        secret never feeds a published hash and rotating one leaves the digest alone."""
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


def load_config(path: str | os.PathLike[str], overrides: list[str] | None = None) -> Config:
    """Read a YAML config, apply `key=value` overrides, interpolate env vars, validate."""
    read = read_mapping(path, overrides, free_form_keys(Config))
    try:
        cfg = Config.model_validate(read.data, context={COLLECT: True})
    except ValidationError as exc:
        raise LakemlError(redact_text(describe(exc, Config), read.secrets)) from None
    cfg._raw, cfg._secrets = read.shown, read.secrets
    return cfg
