"""The config sections of the data: what `lakeml generate` makes, the source a run reads, the
Delta tables it writes and the features and labels made from them.

Keys `generate`, `source`, `tables` and `features` of `conf/<env>.yaml`; `lakeml.core.config`
validates them with the rest of the file.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from lakeml.core.config_load import (
    Fraction,
    IsoDate,
    NonEmpty,
    OptionalDate,
    SparkType,
    Text,
    rule,
)
from lakeml.core.config_load import Section as _Section
from lakeml.core.event_spec import Aggregation, EventSourceSpec, TargetConfig


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
