"""Snapshot dates (point-in-time cutoffs) and the users each snapshot is about.

A snapshot date S is a cutoff: what is known at S is every event with `event_date < S`
(`ts < S 00:00 UTC`). Features and labels share the population defined here, so a model
is trained on exactly the users it will later score.
"""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeml.core.config import SnapshotConfig

CANCELLATION = "Cancellation Confirmation"


def event_day_range(silver: DataFrame) -> tuple[date, date] | None:
    """First and last `event_date` in silver, or None when it has no rows.

    Data arrives as one complete day per file, so the last day is complete.
    """
    row = silver.agg(F.min("event_date").alias("first"), F.max("event_date").alias("last")).first()
    if row is None or row["first"] is None:
        return None
    return row["first"], row["last"]


def snapshot_series(
    first_day: date, last_day: date, every_days: int, min_history_days: int
) -> list[date]:
    """`last_day + 1`, then every `every_days` back while `min_history_days` of data exist.

    Returned oldest first. The newest snapshot sees all data (its features are for scoring).
    `every_days >= 1` and `min_history_days >= 0` are checked when the config loads.
    """
    earliest = first_day + timedelta(days=min_history_days)
    dates = []
    s = last_day + timedelta(days=1)
    while s >= earliest:
        dates.append(s)
        s -= timedelta(days=every_days)
    return sorted(dates)


def snapshot_dates(cfg: SnapshotConfig, first_day: date, last_day: date) -> list[date]:
    """The explicit `dates` from config if any, else the default series over the data.

    Dates on or before the first day of data are dropped: nobody is in their population.
    """
    if not cfg.dates:
        series = snapshot_series(first_day, last_day, cfg.every_days, cfg.min_history_days)
        return [s for s in series if s > first_day]
    # The config checked that every entry is a YYYY-MM-DD date when it loaded.
    parsed = {date.fromisoformat(text) for text in cfg.dates}
    return sorted(s for s in parsed if s > first_day)


def labelled_dates(snapshots: list[date], horizon_days: int, last_day: date) -> list[date]:
    """Snapshots whose label horizon `[S, S + horizon_days - 1]` ends by `last_day`."""
    return [s for s in snapshots if s + timedelta(days=horizon_days - 1) <= last_day]


def snapshot_frame(spark: SparkSession, dates: list[date]) -> DataFrame:
    """The snapshot dates as a one-column DataFrame, small enough to broadcast.

    Built from literals, so it is a local relation in the JVM (no RDD of Python rows).
    """
    values = F.array(*[F.lit(d) for d in sorted(set(dates))]).cast("array<date>")
    return spark.range(1).select(F.explode(values).alias("snapshot_date"))


def user_lifecycle(silver: DataFrame) -> DataFrame:
    """Per user: first event day and first cancellation day (null if never cancelled)."""
    is_cancellation = F.col("page") == CANCELLATION
    return silver.groupBy("user_id").agg(
        F.min("event_date").alias("first_event_date"),
        F.min(F.when(is_cancellation, F.col("event_date"))).alias("cancellation_date"),
    )


def population(lifecycle: DataFrame, snapshots: DataFrame) -> DataFrame:
    """(user_id, snapshot_date) for users active before S who had not cancelled before S.

    The lifecycle columns ride along (labels need `cancellation_date`).
    """
    s = F.col("snapshot_date")
    seen_before = F.col("first_event_date") < s
    not_churned_yet = F.col("cancellation_date").isNull() | (F.col("cancellation_date") >= s)
    return lifecycle.join(F.broadcast(snapshots), seen_before & not_churned_yet, "inner").select(
        F.col("user_id"),
        F.col("snapshot_date"),
        F.col("first_event_date"),
        F.col("cancellation_date"),
    )
