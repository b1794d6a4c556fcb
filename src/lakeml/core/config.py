"""Typed, validated configuration loaded from `conf/<env>.yaml`.

The YAML file, `--set dotted.key=value` overrides and `${ENV_VAR}` / `${ENV_VAR:-default}`
references (`lakeml.core.config_load`) are validated into the frozen pydantic models below.
Every choice, range and cross-field rule is checked here, so a bad value fails at load, before
Spark starts, as one `LakemlError` line naming each dotted key.
"""

from __future__ import annotations

import hashlib
import json
import os
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PrivateAttr, ValidationError, model_validator

from lakeml.core.config_load import (
    COLLECT,
    ConfText,
    Fraction,
    IsoDate,
    NonEmpty,
    OptionalDate,
    Percent,
    SparkType,
    Text,
    describe,
    free_form_keys,
    read_mapping,
    rule,
)
from lakeml.core.config_load import Section as _Section
from lakeml.core.errors import LakemlError
from lakeml.core.event_spec import (
    Aggregation,
    EventSourceSpec,
    TargetConfig,
    check_features,
)
from lakeml.core.secrets import redact_text

ModelType = Literal["logistic_regression", "random_forest", "gbt", "xgboost"]
Metric = Literal["areaUnderPR", "areaUnderROC"]
ThresholdPolicy = Literal["best_f1", "top_k"]
MODEL_TYPES: tuple[str, ...] = typing.get_args(ModelType)
METRICS: tuple[str, ...] = typing.get_args(Metric)
THRESHOLD_POLICIES: tuple[str, ...] = typing.get_args(ThresholdPolicy)
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
    conf: dict[Text, ConfText] = Field(default_factory=dict)


class DirtConfig(_Section):
    """Rates of real-world dirt the generator injects, as fractions of events."""

    KEY = "generate.dirt"
    logged_out_rate: Fraction = 0.03
    duplicate_rate: Fraction = 0.005
    malformed_rate: Fraction = 0.001
    missing_field_rate: Fraction = 0.001
    bad_value_rate: Fraction = 0.0005

    @model_validator(mode="after")
    def _copies_fit(self) -> DirtConfig:
        copied = (
            self.duplicate_rate
            + self.malformed_rate
            + self.missing_field_rate
            + self.bad_value_rate
        )
        if copied > 1.0:
            raise rule(
                "",
                "the rates other than logged_out_rate must sum to at most 1 (each dirty copy "
                f"needs its own clean event), got {copied:g}",
            )
        return self


class GenerateConfig(_Section):
    """`lakeml generate`: `eventsim` writes Sparkify-schema JSON-lines day files,
    `purchases` a retail purchase log as CSV day files (`lakeml.synthetic.purchases`)."""

    KEY = "generate"
    kind: Literal["eventsim", "purchases"] = Field("eventsim", title="generator kind")
    users: int = Field(500, ge=1)
    days: int = Field(60, ge=1)
    start_date: IsoDate = "2018-10-01"
    seed: int = 42
    dirt: DirtConfig = Field(default_factory=DirtConfig)


class TableSourceConfig(_Section):
    """A customer snapshot table (one row per entity, e.g. the Telco CSV) read as it is.

    Columns are read as text and cast to `types` (others stay strings; see
    `config_load.SPARK_TYPES`); blank strings are missing values; a row whose value cannot be
    cast is quarantined, not dropped.
    """

    KEY = "source.table"
    format: NonEmpty = "csv"
    options: dict[Text, Text] = Field(default_factory=lambda: {"header": "true"})
    entity_col: Text = ""
    # The date the snapshot describes, if the table has no column for it.
    snapshot_date: OptionalDate = ""
    snapshot_col: Text = ""
    label_col: Text = ""
    positive_values: list[Text] = Field(default_factory=lambda: ["Yes", "yes", "1", "true"])
    types: dict[Text, SparkType] = Field(default_factory=dict)
    drop_cols: list[Text] = Field(default_factory=list)
    # A table without an id column: entity_col is made from a hash of each row's values.
    entity_from_row: bool = False
    # A column holding the name of the file each row came from (e.g. a shipped split).
    file_name_col: Text = ""


class SourceConfig(_Section):
    """Where raw data is read from; relative paths are under storage.root.

    kind `events`: a folder of event log files described by `events` (e.g. the Sparkify
    preset, `conf/presets/sparkify.yaml`); kind `table`: a customer snapshot table (csv,
    parquet, delta, json) described by `table`.
    """

    KEY = "source"
    kind: Literal["events", "table"] = Field("events", title="source kind")
    path: NonEmpty = "raw/events"
    events: EventSourceSpec | None = None
    table: TableSourceConfig = Field(default_factory=TableSourceConfig)
    # Events before min_event_date or after ingestion + clock_skew_minutes are quarantined.
    min_event_date: IsoDate = "2000-01-01"
    clock_skew_minutes: int = Field(60, ge=0)

    @model_validator(mode="after")
    def _table_is_described(self) -> SourceConfig:
        if self.kind != "table":
            return self
        for name in ("entity_col", "label_col"):
            if not getattr(self.table, name):
                raise rule(f"table.{name}", "must be set when source.kind is table")
        if bool(self.table.snapshot_date) == bool(self.table.snapshot_col):
            raise rule(
                "table",
                "set exactly one of snapshot_date and snapshot_col when source.kind is table",
            )
        return self


class TablesConfig(_Section):
    """Delta table locations; relative paths are under storage.root."""

    KEY = "tables"
    bronze: NonEmpty = "bronze/events"
    silver: NonEmpty = "silver/events"
    quarantine: NonEmpty = "silver/quarantine"
    features: NonEmpty = "gold/user_features"
    labels: NonEmpty = "gold/churn_labels"
    scores: NonEmpty = "gold/churn_scores"
    drift: NonEmpty = "monitoring/feature_drift"
    performance: NonEmpty = "monitoring/model_performance"


class SnapshotConfig(_Section):
    """Snapshot dates: an explicit list, or the days `every_days` apart counted from `origin`
    (a Monday: weekly snapshots fall on Mondays) up to the day after the last complete day
    in the data, once `min_history_days` of data exist; at most `max_snapshots` of them."""

    KEY = "features.snapshots"
    dates: list[IsoDate] = Field(default_factory=list)
    every_days: int = Field(7, ge=1)
    min_history_days: int = Field(7, ge=0)
    origin: IsoDate = "1970-01-05"
    max_snapshots: int = Field(500, ge=1)


class FeaturesConfig(_Section):
    KEY = "features"
    windows: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [7, 14, 28], min_length=1
    )
    label_horizon_days: int = Field(14, ge=1)
    snapshots: SnapshotConfig = Field(default_factory=SnapshotConfig)
    # Event logs: the features per (entity, snapshot) and the label (`lakeml.core.event_spec`).
    aggregations: list[Aggregation] = Field(default_factory=list)
    target: TargetConfig | None = None
    # Who a snapshot is about: entities with an event in the `active_within_days` days before
    # it (null: any time before it), less those a churn_event target already took out.
    active_within_days: int | None = Field(None, ge=1)


class ModelSpec(_Section):
    KEY = "train.models[]"
    type: ModelType = Field(title="model type")
    grid: dict[Text, list[Any]] = Field(default_factory=dict)


class SplitConfig(_Section):
    """Out-of-time split: the latest labelled snapshots test, the ones before validate.

    `random` (for a table with a single snapshot) splits entities at random by fractions.
    `column` keeps a split the data ships with: rows whose `column` holds one of
    `test_values` test; of the others, `validation_fraction` of the entities (at random)
    validate and the rest train.
    """

    KEY = "train.split"
    method: Literal["out_of_time", "random", "column"] = Field("out_of_time", title="split method")
    test_snapshots: int = Field(1, ge=1)
    validation_snapshots: int = Field(1, ge=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    column: Text = ""
    test_values: list[Text] = Field(default_factory=list)

    @model_validator(mode="after")
    def _column_is_named(self) -> SplitConfig:
        if self.method == "column" and not (self.column and self.test_values):
            raise rule("", "method column needs split.column and split.test_values")
        return self

    @model_validator(mode="after")
    def _leaves_rows_to_train_on(self) -> SplitConfig:
        if self.test_fraction + self.validation_fraction >= 1:
            raise rule(
                "",
                "test_fraction + validation_fraction must leave rows to train on (got "
                f"{self.test_fraction:g} + {self.validation_fraction:g} >= 1)",
            )
        return self


class ThresholdConfig(_Section):
    KEY = "train.threshold"
    policy: ThresholdPolicy = Field("best_f1", title="threshold policy")
    top_k_pct: Percent = 10.0


class BaselineConfig(_Section):
    KEY = "train.baseline"
    enabled: bool = True
    sample_rows: int = Field(200000, ge=1)


class GateConfig(_Section):
    """A challenger becomes champion if it passes the floors and beats the champion's
    `metric` on the same test window by at least `margin`.

    The floors fit any churn rate: `min_pr_auc_lift` is PR AUC over the test window's base
    rate (a model that ranks at random scores about 1), `min_roc_auc` is 0.5 for random.
    `min_pr_auc` is an absolute floor (0: off). `baseline_max_shortfall`, when set, also
    asks the challenger's `metric` to come within that much of the scikit-learn baseline's
    on the same rows (null: off)."""

    KEY = "train.gate"
    metric: Metric = Field("areaUnderPR", title="metric")
    margin: float = Field(0.01, ge=0)
    min_roc_auc: Fraction = 0.65
    min_pr_auc_lift: float = Field(1.5, ge=0)
    min_pr_auc: Fraction = 0.0
    baseline_max_shortfall: float | None = Field(None, ge=0)


class XGBoostConfig(_Section):
    """Model type `xgboost` (xgboost.spark): one booster trained across `num_workers` Spark
    tasks at once (barrier mode), stopped early on the validation window."""

    KEY = "train.xgboost"
    # null: every task slot the session has (local[*]: the cores; a cluster: its executors').
    num_workers: int | None = Field(None, ge=1)
    # Rounds without a better validation metric (train.primary_metric) before stopping.
    early_stopping_rounds: int = Field(10, ge=1)


class TrainConfig(_Section):
    KEY = "train"
    entity_col: NonEmpty = "user_id"
    snapshot_col: NonEmpty = "snapshot_date"
    label_col: NonEmpty = "churned"
    categorical_cols: list[Text] = Field(default_factory=list)
    exclude_cols: list[Text] = Field(default_factory=list)
    split: SplitConfig = Field(default_factory=SplitConfig)
    class_weight: Literal["balanced", "none"] = Field("balanced", title="class weight")
    primary_metric: Metric = Field("areaUnderPR", title="metric")
    parallelism: int = Field(2, ge=1)
    seed: int = 42
    # An empty list written in the file is an error; left out, training says what to add.
    models: list[ModelSpec] = Field(default_factory=list, min_length=1)
    threshold: ThresholdConfig = Field(default_factory=ThresholdConfig)
    top_k_pcts: list[Percent] = Field(default_factory=lambda: [5.0, 10.0, 20.0])
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    xgboost: XGBoostConfig = Field(default_factory=XGBoostConfig)


class MlflowConfig(_Section):
    """Empty tracking_uri: MLFLOW_TRACKING_URI if set, else SQLite under storage.root."""

    KEY = "mlflow"
    tracking_uri: Text = ""
    experiment: NonEmpty = "lakeml-churn"
    registered_model: NonEmpty = "lakeml-churn"
    timeout_seconds: int = Field(20, gt=0)


class ScoreConfig(_Section):
    """Empty model_uri: models:/<registered_model>@champion."""

    KEY = "score"
    model_uri: Text = ""
    arrow_batch_size: int = Field(10000, ge=1)
    risk_bands: int = Field(10, ge=1)
    # Per scored entity, this many features that raise its risk most (0: none).
    reasons_top_k: int = Field(3, ge=0, le=50)


class MonitorConfig(_Section):
    """Drift compares a scored snapshot with a reference of the same kind: by default the
    model's latest training snapshot (`train_window`: all its training snapshots). Features
    matching an `exclude` glob (e.g. lifetime totals, which grow with account age by
    construction) are not checked. The headline is the PSI of the scores themselves against
    the model's test-window scores."""

    KEY = "monitor"
    reference: Literal["latest_train_snapshot", "train_window"] = Field(
        "latest_train_snapshot", title="drift reference"
    )
    exclude: list[Text] = Field(default_factory=list)
    psi_bins: int = Field(10, ge=2)
    psi_threshold: float = Field(0.2, ge=0)
    null_rate_threshold: Fraction = 0.1
    # Realized performance: precision and lift among the top_k_pct% highest scores, and the
    # expected calibration error over calibration_bins equal-width score bins.
    top_k_pct: Percent = 10.0
    calibration_bins: int = Field(10, ge=2)
    # `lakeml monitor`'s SLA checks. Scores are fresh when the champion has scored a snapshot
    # at most max_score_lag_days before the latest feature snapshot.
    max_score_lag_days: int = Field(0, ge=0)
    min_realized_roc_auc: Fraction = 0.65
    min_realized_pr_auc_lift: float = Field(1.5, ge=0)
    max_drift_share: Fraction = 0.1
    max_quarantine_share: Fraction = 0.05
    # The environment variable holding the alert webhook URL (Slack-compatible JSON body);
    # unset or empty: no alert is sent. The URL itself never sits in config or logs.
    webhook_env: Text = "LAKEML_WEBHOOK_URL"
    webhook_timeout_seconds: float = Field(10.0, gt=0)


class ReportConfig(_Section):
    """`lakeml report`: the business assumptions a manager's section rests on, stated in the
    report. Who to contact: the top `budget_pct` % of the scored snapshot (one of
    train.top_k_pcts, whose test-window precision training measured); each contact costs
    `cost_per_contact`; a churner contacted stays with probability `save_rate`, worth
    `value_per_retained`."""

    KEY = "report"
    budget_pct: Percent = 10.0
    cost_per_contact: float = Field(5.0, ge=0)
    value_per_retained: float = Field(120.0, ge=0)
    save_rate: Fraction = 0.25
    currency: NonEmpty = "USD"
    example_customers: int = Field(3, ge=0, le=20)
    contacts_shown: int = Field(20, ge=0, le=1000)


class RetrainConfig(_Section):
    """`lakeml retrain`: train when the champion is older than max_champion_age_days, its
    realized performance fell below monitor's floors, or its drift share exceeded
    monitor.max_drift_share; otherwise do nothing and say why. The gate still decides."""

    KEY = "retrain"
    max_champion_age_days: int = Field(28, ge=0)


class ServeConfig(_Section):
    """`lakeml serve`: where it listens, who may call it, how fresh its scores must be.

    `auth_env` names an environment variable holding a bearer token the /v1 routes then
    require (the token itself never sits in config); empty: no token."""

    KEY = "serve"
    host: NonEmpty = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    auth_env: Text = ""
    max_body_bytes: int = Field(1_000_000, ge=1024)
    max_rows: int = Field(1000, ge=1)
    max_score_age_days: int = Field(8, ge=0)
    refresh_seconds: float = Field(5.0, gt=0)


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
