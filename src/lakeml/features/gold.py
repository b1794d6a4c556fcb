"""Gold stage: keep the feature and label tables in step with silver, one snapshot at a time.

Both tables are partitioned by `snapshot_date`. A run recomputes only the snapshots that
new events can change and writes them with `replaceWhere`, so reruns are idempotent and
a run with nothing to do writes no Delta version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from lakeml.core import storage
from lakeml.core.config import FeaturesConfig
from lakeml.core.errors import LakemlError
from lakeml.features.events import build_features
from lakeml.features.labels import build_labels
from lakeml.features.snapshots import event_day_range, labelled_dates, snapshot_dates

PARTITION = "snapshot_date"


@dataclass(frozen=True)
class Plan:
    """Snapshot dates to (re)compute in each table, oldest first."""

    features: list[date]
    labels: list[date]


def plan_refresh(
    series: list[date],
    labelled: list[date],
    stored_features: set[date] | None,
    stored_labels: set[date] | None,
    min_new_event_date: date | None,
    horizon_days: int,
) -> Plan:
    """Which snapshots new events can change; a `stored_*` of None means rebuild that table.

    Features at S read events before S, so new events from day m change S > m. Labels at
    S also read `[S, S + horizon - 1]`, so they change for S > m - horizon. Snapshots not
    stored yet (new in the series, or newly fully observed for labels) are computed too.
    """
    m = min_new_event_date

    def todo(dates: list[date], stored: set[date] | None, changed_after: date | None) -> list[date]:
        if stored is None:
            return list(dates)
        return [
            s for s in dates if s not in stored or (changed_after is not None and s > changed_after)
        ]

    return Plan(
        features=todo(series, stored_features, m),
        labels=todo(labelled, stored_labels, m - timedelta(days=horizon_days) if m else None),
    )


@dataclass(frozen=True)
class GoldPaths:
    """The tables gold reads (silver; quarantine is only named in errors) and writes."""

    silver: str
    quarantine: str
    features: str
    labels: str


@dataclass(frozen=True)
class GoldResult:
    snapshots_computed: list[str]  # ISO dates recomputed this run, in either table
    feature_rows: int
    label_rows: int
    snapshots_total: int
    labelled_snapshots: int


def update(
    spark: SparkSession,
    cfg: FeaturesConfig,
    paths: GoldPaths,
    min_new_event_date: date | None,
    full_refresh: bool = False,
) -> GoldResult:
    """Bring the gold feature and label tables up to date with silver.

    `min_new_event_date` is the earliest event day silver gained since the last run (None:
    nothing new). `full_refresh` rebuilds both tables, dropping snapshots not in the series,
    and is the way to pick up a change in the feature columns.
    """
    features_path, labels_path = paths.features, paths.labels
    silver = storage.read(spark, paths.silver)
    day_range = event_day_range(silver)
    if day_range is None:
        raise LakemlError(
            f"no valid events in silver at {paths.silver!r}; see the quarantine table "
            f"{paths.quarantine!r} for the rows that were rejected and why, fix the "
            "input and run `lakeml features` again"
        )
    first_day, last_day = day_range
    if isinstance(min_new_event_date, str):
        min_new_event_date = date.fromisoformat(min_new_event_date)
    horizon = cfg.label_horizon_days
    series = snapshot_dates(cfg.snapshots, first_day, last_day)
    labelled = labelled_dates(series, horizon, last_day)
    stored_features = None if full_refresh else _stored_dates(spark, features_path)
    stored_labels = None if full_refresh else _stored_dates(spark, labels_path)
    plan = plan_refresh(
        series, labelled, stored_features, stored_labels, min_new_event_date, horizon
    )

    feature_rows = label_rows = 0
    if plan.features:
        features = build_features(silver, plan.features, cfg.windows)
        feature_rows = _write(spark, features, features_path, plan.features, stored_features)
        stored_features = _stored_dates(spark, features_path)
    if plan.labels:
        labels = build_labels(silver, plan.labels, horizon, last_day)
        label_rows = _write(spark, labels, labels_path, plan.labels, stored_labels)
        stored_labels = _stored_dates(spark, labels_path)
    return GoldResult(
        snapshots_computed=[d.isoformat() for d in sorted({*plan.features, *plan.labels})],
        feature_rows=feature_rows,
        label_rows=label_rows,
        snapshots_total=len(stored_features or ()),
        labelled_snapshots=len(stored_labels or ()),
    )


def _stored_dates(spark: SparkSession, path: str) -> set[date] | None:
    """Snapshot dates present in a gold table, or None when the table does not exist."""
    if not storage.exists(spark, path):
        return None
    rows = storage.read(spark, path).select(PARTITION).distinct().collect()
    return {r[PARTITION] for r in rows}


def _write(
    spark: SparkSession, df: DataFrame, path: str, dates: list[date], stored: set[date] | None
) -> int:
    """Replace the given snapshots' partitions (or build the table); return rows written."""
    if stored is None:
        # A new table or a full refresh: the whole table is rebuilt, schema included.
        storage.rebuild(df, path, partition_by=[PARTITION])
    else:
        _check_same_columns(storage.read(spark, path).schema, df.schema, path)
        listed = ", ".join(f"DATE'{d.isoformat()}'" for d in sorted(dates))
        storage.replace_where(df, path, f"{PARTITION} IN ({listed})", partition_by=[PARTITION])
    return int(storage.last_operation_metrics(spark, path).get("numOutputRows", 0))


def _check_same_columns(stored: T.StructType, new: T.StructType, path: str) -> None:
    """Refuse to mix snapshots computed with different columns in one table."""
    have = [(f.name, f.dataType) for f in stored.fields]
    want = [(f.name, f.dataType) for f in new.fields]
    if have != want:
        added = sorted({n for n, _ in want} - {n for n, _ in have})
        removed = sorted({n for n, _ in have} - {n for n, _ in want})
        raise LakemlError(
            f"the gold table at {path!r} has other columns than this version computes "
            f"(new: {added or 'none'}, gone: {removed or 'none'}, or types/order differ); "
            "rebuild it with `lakeml features --full-refresh`"
        )
