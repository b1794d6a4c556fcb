"""Silver: parsed, validated, de-duplicated events, plus a quarantine of rejected raw lines.

Each bronze row ends in exactly one place: silver (a new valid event), quarantine (a line
that broke a rule, with the first rule it broke) or the duplicate count (a valid event
already in silver). `ingest.rules` judges each line and the pure transforms below shape the
results; `update` runs the bronze rows not yet processed through them in one batch and writes
the results exactly once.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, Observation, Row, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import WindowSpec

from lakeml.core import storage
from lakeml.core.config import SourceConfig
from lakeml.core.errors import LakemlError
from lakeml.core.storage import NO_STATS
from lakeml.ingest.rules import (
    EVENT_ID_SCHEMES,
    SHA256_JSON,
    XXHASH64_X2,
    classify,
    silver_columns,
)

QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("value", T.StringType()),
        T.StructField("source_file", T.StringType()),
        T.StructField("ingested_at", T.TimestampType()),
        T.StructField("rule", T.StringType()),
        T.StructField("quarantined_at", T.TimestampType()),
    ]
)
PARTITION_COLUMNS = ["event_date"]
ID_KEY = ["event_date", "event_id"]  # an event_id fixes its event_date
ROW_ID = "_row"  # a row's place in the judged batch: tells apart copies of one line
# A batch of at least FIND_REPEATS_FROM valid rows finds the copies to drop first, and if its
# repeated ids and those copies are each at most BROADCAST_REPEATS (both broadcast, a long
# each) drops only those rows.
# A smaller batch ranks all of its rows in one query: the jobs that find the copies cost
# about 0.2 s even on a few rows, more than ranking them saves.
FIND_REPEATS_FROM = 100_000
BROADCAST_REPEATS = 500_000


def to_quarantine(rejected: DataFrame) -> DataFrame:
    """Rows that broke a rule -> the quarantine contract: the raw line and why it failed."""
    stamped = F.current_timestamp().alias("quarantined_at")
    return rejected.select("value", "source_file", "ingested_at", "rule", stamped)


def _id_hash() -> Column:
    return F.xxhash64(*ID_KEY)


def repeated_hashes(events: DataFrame) -> DataFrame:
    """`_id_hash` (a 64-bit hash of event_date and event_id) of the ids that may occur more
    than once in `events`: every repeated id's hash, and rarely one that two ids share.

    Grouping by a long instead of the two columns halves the data the aggregation moves.
    """
    counts = events.groupBy(_id_hash().alias("_hash")).agg(F.count(F.lit(1)).alias("_copies"))
    return counts.where(F.col("_copies") > 1).select("_hash")


def _earliest_first() -> WindowSpec:
    """Copies of one event, the first ingested first (by ingested_at, source_file, ROW_ID)."""
    return Window.partitionBy(*ID_KEY).orderBy("ingested_at", "source_file", ROW_ID)


def later_copies(events: DataFrame, hashes: DataFrame) -> DataFrame:
    """The `ROW_ID`s of the rows of `events` that repeat an event of an earlier row (by
    ingested_at, source_file, then ROW_ID): all the rows to drop from the batch.

    `hashes`: `repeated_hashes(events)`, broadcast; only the rows they pick are ranked.
    """
    picked = events.join(F.broadcast(hashes), _id_hash() == F.col("_hash"), "left_semi")
    ranked = picked.select(ROW_ID, F.row_number().over(_earliest_first()).alias("_rank"))
    return ranked.where(F.col("_rank") > 1).select(ROW_ID)


def drop_duplicate_events(
    events: DataFrame,
    columns: list[str],
    existing_ids: DataFrame | None = None,
    later: DataFrame | None = None,
) -> DataFrame:
    """Keep one row per `event_id` (the earliest ingested) and drop ids already in
    `existing_ids` (event_date and event_id of silver), so an event enters silver once.

    `later`: `later_copies(events, ...)`, when it was small enough to broadcast. Then those
    rows are dropped by their `ROW_ID` (a join on one long), and the rest pass through
    without a shuffle. Without it every row is ranked, clustered by event_date (an event_id
    fixes its event_date): one shuffle serves the ranking, the anti join and the write.
    """
    if later is None:
        ranked = events.repartition(*PARTITION_COLUMNS)
        ranked = ranked.select("*", F.row_number().over(_earliest_first()).alias("_rank"))
        unique = ranked.where(F.col("_rank") == 1)
    else:
        unique = events.join(F.broadcast(later), on=ROW_ID, how="left_anti")
    if existing_ids is not None:
        known = existing_ids.select(*ID_KEY)
        unique = unique.join(known, on=ID_KEY, how="left_anti")
    return unique.select(*columns)


# userMetadata key of silver and quarantine commits: {"bronze_until_us": the latest bronze
# ingested_at taken in (epoch µs), "bronze_version": the bronze version read for it,
# ID_SCHEME: how the batch's event_ids were computed (`ingest.rules`)}; in silver's, also
# NEW_SINCE: the earliest event_date the commit can add (ISO; null: none),
# from which gold derives the snapshots to recompute (features.lineage).
MARKER_KEY = "lakeml_silver"
NEW_SINCE = "min_event_date"
ID_SCHEME = "event_id"
Marker = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class SilverResult:
    bronze_rows: int
    silver_inserted: int
    quarantined: int
    duplicates_removed: int
    quarantine_by_rule: dict[str, int]
    min_new_event_date: datetime.date | None  # earliest event_date inserted this run

    @property
    def reconciles(self) -> bool:
        """Every bronze row of the run is accounted for: kept, quarantined or a duplicate."""
        return self.bronze_rows == self.silver_inserted + self.quarantined + self.duplicates_removed


def _marker(spark: SparkSession, path: str) -> dict[str, Any]:
    """The table's newest marker ({} if no table); for a table written before markers, the
    newest `ingested_at` of its rows, the best bound known."""
    if not storage.exists(spark, path):
        return {}
    marker = storage.commit_metadata(spark, path, MARKER_KEY)
    if marker is None:
        until = storage.read(spark, path).agg(F.max(F.unix_micros("ingested_at"))).first()[0]
        marker = {} if until is None else {"bronze_until_us": until}
    return marker


def _count_by_rule(classified: DataFrame) -> list[Row]:
    """One row per rule (null: valid) with its rows, event dates and latest ingest time."""
    return (
        classified.groupBy("rule")
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.min("event_date").alias("first_day"),
            F.max("event_date").alias("last_day"),
            F.max(F.unix_micros("ingested_at")).alias("until"),
        )
        .collect()
    )


def _write_quarantine(
    spark: SparkSession,
    batch: DataFrame,
    path: str,
    rejected: list[Row],
    silver_until: int | None,
    marker: Marker,
) -> None:
    """Append the batch's rejected rows not in quarantine yet (created even if none are)."""
    exists = storage.exists(spark, path)
    if exists and not rejected:
        return
    rows = batch.where(F.col("rule").isNotNull())
    written = _marker(spark, path).get("bronze_until_us") if exists else None
    if written is not None and (silver_until is None or written > silver_until):
        # Quarantine ahead of silver: a run stopped between the two writes, and the rejected
        # rows up to quarantine's mark are in it already.
        if max(r["until"] for r in rejected) <= written:
            return
        rows = rows.where(F.col("ingested_at") > F.timestamp_micros(F.lit(written)))
    storage.append(to_quarantine(rows), path, metadata=marker, stats_columns=NO_STATS)


def _write_silver(
    spark: SparkSession,
    batch: DataFrame,
    path: str,
    valid: Row | None,
    marker: Marker,
    columns: list[str],
) -> dict[str, Any]:
    """Append the batch's events minus the event_ids already in silver (an anti join on the
    batch's dates); return the rows inserted and their earliest date, exactly.

    The commit records the batch's earliest valid date: a bound known before the write (the
    rows inserted are those minus duplicates), so gold may recompute a little more than it
    must after a batch of partly old duplicates, never less."""
    existing = None
    if valid is not None and storage.exists(spark, path):
        # An event_id fixes its event_date, so only the batch's dates can hold it.
        existing = storage.read(spark, path).where(
            F.col("event_date").between(valid["first_day"], valid["last_day"])
        )
    events = batch.where(F.col("rule").isNull())
    later = None
    if valid is not None and valid["rows"] >= FIND_REPEATS_FROM:
        # Few events arrive twice: find their later copies first and drop just those rows.
        hashes = repeated_hashes(events).localCheckpoint()
        if hashes.count() <= BROADCAST_REPEATS:
            copies = later_copies(events, hashes).localCheckpoint()
            later = copies if copies.count() <= BROADCAST_REPEATS else None
    fresh = drop_duplicate_events(events, columns, existing, later)
    # Counted while written (no second pass): the rows and first day the commit holds.
    inserted = Observation()
    observed = fresh.observe(
        inserted, F.count(F.lit(1)).alias("rows"), F.min("event_date").alias("first_day")
    )
    since = valid["first_day"].isoformat() if valid is not None else None
    new_since = _with_new_since(marker, since)
    storage.append(observed, path, PARTITION_COLUMNS, new_since, stats_columns=NO_STATS)
    if inserted.get["rows"] == 0:
        # Delta drops an append without rows, but the batch must still be marked done (or
        # its duplicates count again): a commit carrying a transaction id is recorded.
        until = marker[MARKER_KEY]["bronze_until_us"]
        nothing = spark.createDataFrame([], batch.select(*columns).schema)
        done = _with_new_since(marker, None)
        storage.append_once(
            nothing, path, "lakeml-silver", until, PARTITION_COLUMNS, done, stats_columns=NO_STATS
        )
    return inserted.get


def _with_new_since(marker: Marker, day: str | None) -> Marker:
    return {MARKER_KEY: {**marker[MARKER_KEY], NEW_SINCE: day}}


def update(
    spark: SparkSession,
    bronze_path: str,
    silver_path: str,
    quarantine_path: str,
    source: SourceConfig,
) -> SilverResult:
    """Move bronze rows not yet processed into silver or quarantine, exactly once.

    The batch: bronze rows ingested after the time silver's last commit recorded, judged
    once by `source.events`' fields and rules (`ingest.rules`), cached, counted by one
    aggregation. Quarantine is appended, then silver; each commit records the batch's latest
    `ingested_at`, so silver's commit marks the batch done atomically, and a rerun after a
    crash between the two skips the rejected rows already quarantined. Silver's commit also
    records the earliest event day it adds, for gold. Nothing new: no commit. Assumes one
    writer at a time, as the pipeline runs.
    """
    if not storage.exists(spark, bronze_path):
        raise LakemlError(f"no bronze table at {bronze_path!r}; run the bronze ingest first")
    done, bronze_version = _marker(spark, silver_path), storage.version(spark, bronze_path)
    if done.get("bronze_version") == bronze_version:
        return SilverResult(0, 0, 0, 0, {}, None)  # bronze unchanged since the last batch
    silver_until = done.get("bronze_until_us")
    # A table keeps its first scheme, so a re-sent event always meets its earlier id.
    scheme = done.get(ID_SCHEME, SHA256_JSON) if done else XXHASH64_X2
    if scheme not in EVENT_ID_SCHEMES:
        raise LakemlError(
            f"silver at {silver_path!r} holds event ids of the scheme {scheme!r}, which this "
            f"lakeml does not know (it knows {', '.join(EVENT_ID_SCHEMES)}); run the lakeml "
            "version that wrote the table, or a newer one"
        )
    bronze = storage.read(spark, bronze_path)
    if silver_until is not None:
        bronze = bronze.where(F.col("ingested_at") > F.timestamp_micros(F.lit(silver_until)))
    # ROW_ID: partition and place in the bronze scan, the same if a cached block is rebuilt.
    classified = classify(bronze, source, scheme).withColumn(
        ROW_ID, F.monotonically_increasing_id()
    )
    # The cache is also the barrier `classify` asks for: the filters on `rule` below stay
    # above the judging (without it, the valid rows took 1,145 s to write at 10x).
    classified = classified.persist()
    try:
        per_rule = _count_by_rule(classified)
        if not per_rule:
            return SilverResult(0, 0, 0, 0, {}, None)
        until = max(r["until"] for r in per_rule)
        marker = {
            MARKER_KEY: {
                "bronze_until_us": until,
                "bronze_version": bronze_version,
                ID_SCHEME: scheme,
            }
        }
        # Should a cached block be recomputed, bronze may have grown: keep to this batch.
        batch = classified.where(F.col("ingested_at") <= F.timestamp_micros(F.lit(until)))
        rejected = [r for r in per_rule if r["rule"] is not None]
        valid = next((r for r in per_rule if r["rule"] is None), None)
        _write_quarantine(spark, batch, quarantine_path, rejected, silver_until, marker)
        columns = silver_columns(source.events)
        inserted = _write_silver(spark, batch, silver_path, valid, marker, columns)
    finally:
        classified.unpersist()
    valid_rows, by_rule = (valid["rows"] if valid else 0), {r["rule"]: r["rows"] for r in rejected}
    return SilverResult(
        bronze_rows=valid_rows + sum(by_rule.values()),
        silver_inserted=inserted["rows"],
        quarantined=sum(by_rule.values()),
        duplicates_removed=valid_rows - inserted["rows"],
        quarantine_by_rule=by_rule,
        min_new_event_date=inserted["first_day"],
    )
