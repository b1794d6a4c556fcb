"""Gold stage: keep the feature and label tables in step with silver, one snapshot at a time.

Both tables are partitioned by `snapshot_date`. A run recomputes only the snapshots that
new events can change and writes them with `replaceWhere`, so reruns are idempotent and
a run with nothing to do writes no Delta version. Which events are new is read from the
tables' commits (`lineage`), so it survives a crash between any two writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeml.core import failpoints, storage
from lakeml.core.config import FeaturesConfig
from lakeml.core.errors import LakemlError
from lakeml.core.event_spec import TargetConfig
from lakeml.core.storage import NO_STATS
from lakeml.features import lineage
from lakeml.features.aggregate import build_features
from lakeml.features.labels import build_labels
from lakeml.features.snapshots import LogColumns, event_day_range, labelled_dates, snapshot_dates

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
    features_new_since: date | None,
    labels_new_since: date | None,
    horizon_days: int,
) -> Plan:
    """Which snapshots new events can change; a `stored_*` of None means rebuild that table.

    `*_new_since` is the earliest event day silver gained since that table was written
    (None: none). Features at S read events before S, so new events from day m change
    S > m. Labels at S also read `[S, S + horizon - 1]`, so they change for S > m - horizon.
    Snapshots not stored yet (new in the series, or newly fully observed for labels) are
    computed too.
    """

    def todo(dates: list[date], stored: set[date] | None, changed_after: date | None) -> list[date]:
        if stored is None:
            return list(dates)
        return [
            s for s in dates if s not in stored or (changed_after is not None and s > changed_after)
        ]

    m = labels_new_since
    return Plan(
        features=todo(series, stored_features, features_new_since),
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
    log: LogColumns,
    full_refresh: bool = False,
) -> GoldResult:
    """Bring the gold feature and label tables up to date with silver.

    What to recompute comes from durable state only (see `lineage`): each table's last
    commit names the silver version it was computed from, and silver's later commits the
    earliest event day they added; a table without that record is rebuilt. A table built
    with other config values is refused. `full_refresh` rebuilds both tables (even with no
    snapshot to fill), dropping snapshots not in the series, and is the way to pick up a
    change in the config or the feature columns.
    """
    # Read at a fixed version, the one the writes below record (no table: a clear error).
    silver_version = storage.version(spark, paths.silver)
    silver = storage.read(spark, paths.silver, version=silver_version)
    # event_date partitions silver: its log's file entries hold the range, else a Spark job.
    day_range = storage.partition_range(paths.silver, "event_date", silver_version)
    day_range = day_range or event_day_range(silver)
    if day_range is None:
        raise LakemlError(
            f"no valid events in silver at {paths.silver!r}; see the quarantine table "
            f"{paths.quarantine!r} for the rows that were rejected and why, fix the "
            "input and run `lakeml features` again"
        )
    first_day, last_day = day_range
    tables = {"features": paths.features, "labels": paths.labels}
    values = lineage.shaping_config(cfg)
    records = {
        name: lineage.latest_record(storage.recent_commits(spark, p)) for name, p in tables.items()
    }
    if not full_refresh:
        _check_config(records, values)
    source = lineage.Source(str(storage.table_id(spark, paths.silver)), silver_version or 0)
    since = _since(spark, paths.silver, source, records, full_refresh)
    horizon = cfg.label_horizon_days
    series = snapshot_dates(cfg.snapshots, first_day, last_day)
    labelled = labelled_dates(series, horizon, last_day)
    stored = {
        name: None if since[name].rebuild else _stored_dates(spark, p) for name, p in tables.items()
    }
    plan = plan_refresh(
        series,
        labelled,
        stored["features"],
        stored["labels"],
        since["features"].min_event_date,
        since["labels"].min_event_date,
        horizon,
    )

    feature_rows = label_rows = 0
    # A rebuild writes even when no snapshot qualifies: the empty table replaces the old one.
    if plan.features or stored["features"] is None:
        features = build_features(silver, plan.features, cfg.windows, cfg.aggregations, log)
        meta = lineage.record(source, values["features"])
        feature_rows, stored["features"] = _write(
            spark, features, tables["features"], plan.features, stored["features"], meta, NO_STATS
        )
    failpoints.reach("gold.features_written")
    if plan.labels or stored["labels"] is None:
        target = _target(cfg)
        labels = build_labels(silver, plan.labels, horizon, last_day, target, log)
        # The label's min/max per file let training's preflight see the classes in the log.
        label_stats = [target.label_col]
        meta = lineage.record(source, values["labels"])
        label_rows, stored["labels"] = _write(
            spark, labels, tables["labels"], plan.labels, stored["labels"], meta, label_stats
        )
    return GoldResult(
        snapshots_computed=[d.isoformat() for d in sorted({*plan.features, *plan.labels})],
        feature_rows=feature_rows,
        label_rows=label_rows,
        snapshots_total=len(stored["features"] or ()),
        labelled_snapshots=len(stored["labels"] or ()),
    )


def _target(cfg: FeaturesConfig) -> TargetConfig:
    if cfg.target is None:
        raise LakemlError("features.target must say what the label is for an event log")
    return cfg.target


def _check_config(records: dict[str, Any], values: dict[str, dict[str, Any]]) -> None:
    """Refuse to add snapshots computed with other config values than the table's rows.

    An error rather than a silent rebuild: rebuilding rewrites every snapshot a registered
    model was trained on and costs a full pass, so it should be a deliberate act.
    """
    changed = {name: lineage.changed_keys(records[name], values[name]) for name in values}
    parts = [f"{name}: {', '.join(keys)}" for name, keys in changed.items() if keys]
    if parts:
        raise LakemlError(
            f"the gold tables were built with other config values ({'; '.join(parts)}); run "
            "`lakeml features --full-refresh` to rebuild them with the current config, or "
            "restore the old values"
        )


def _since(
    spark: SparkSession,
    silver_path: str,
    source: lineage.Source,
    records: dict[str, Any],
    full_refresh: bool,
) -> dict[str, lineage.Since]:
    """Per table, what silver gained since the version its record names (one history read)."""
    if full_refresh:
        return {name: lineage.REBUILD for name in records}
    recorded = [
        r["silver_version"]
        for r in records.values()
        if r is not None and isinstance(r.get("silver_version"), int)
    ]
    commits = None
    if recorded:
        commits = storage.commits_after(spark, silver_path, min(recorded), source.version)
    return {name: lineage.since(r, source, commits) for name, r in records.items()}


def _stored_dates(spark: SparkSession, path: str) -> set[date] | None:
    """Snapshot dates present in a gold table, or None when the table does not exist."""
    return storage.partition_values(spark, path, PARTITION)


def _write(
    spark: SparkSession,
    df: DataFrame,
    path: str,
    dates: list[date],
    stored: set[date] | None,
    metadata: dict[str, Any],
    stats_columns: Sequence[str],
) -> tuple[int, set[date]]:
    """Replace the given snapshots' partitions (or build the table), recording `metadata` in
    the same commit; return the rows written and the snapshot dates the table now holds.
    The log keeps file min/max of `stats_columns` only (reads select by the partition)."""
    # Counted while written (no second pass): rows and the snapshots that got any.
    written = Observation()
    observed = df.observe(
        written, F.count(F.lit(1)).alias("rows"), F.collect_set(PARTITION).alias("dates")
    )
    if stored is None:
        # A new table, a full refresh or an unknown past: rebuilt whole, schema included.
        storage.rebuild(observed, path, [PARTITION], metadata, stats_columns)
        kept: set[date] = set()
    else:
        _check_same_columns(storage.read(spark, path).schema, df.schema, path)
        listed = ", ".join(f"DATE'{d.isoformat()}'" for d in sorted(dates))
        condition = f"{PARTITION} IN ({listed})"
        storage.replace_where(
            observed, path, condition, [PARTITION], metadata, stats_columns=stats_columns
        )
        kept = stored - set(dates)
    return int(written.get["rows"]), kept | set(written.get["dates"])


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
