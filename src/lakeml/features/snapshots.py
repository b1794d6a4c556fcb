"""Snapshot dates (point-in-time cutoffs) and the users each snapshot is about.

A snapshot date S is a cutoff: what is known at S is every event with `event_date < S`
(`ts < S 00:00 UTC`). Features and labels share the population defined here, so a model
is trained on exactly the users it will later score.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeml.core.config import FeaturesConfig, SnapshotConfig
from lakeml.core.errors import LakemlError
from lakeml.core.event_spec import EventSourceSpec

SNAPSHOT = "snapshot_date"


def event_day_range(silver: DataFrame) -> tuple[date, date] | None:
    """First and last `event_date` in silver, or None when it has no rows.

    Data arrives as one complete day per file, so the last day is complete.
    """
    row = silver.agg(F.min("event_date").alias("first"), F.max("event_date").alias("last")).first()
    if row is None or row["first"] is None:
        return None
    return row["first"], row["last"]


def snapshot_series(
    first_day: date, last_day: date, every_days: int, min_history_days: int, origin: date
) -> list[date]:
    """Every S with `(S - origin) % every_days == 0`, from `min_history_days` after the first
    day (and after the first day: nobody is in an earlier population) to `last_day + 1`,
    oldest first.

    The grid is fixed by `origin`, not by the data, so a day of new data adds a snapshot only
    when it completes one on the grid: daily runs and one run over the same days give the
    same series. `every_days >= 1` and `min_history_days >= 0` are checked when the config
    loads.
    """
    earliest = first_day + timedelta(days=max(min_history_days, 1))
    first = earliest + timedelta(days=(origin - earliest).days % every_days)
    end = last_day + timedelta(days=1)
    count = 0 if first > end else (end - first).days // every_days + 1
    return [first + timedelta(days=i * every_days) for i in range(count)]


def snapshot_dates(cfg: SnapshotConfig, first_day: date, last_day: date) -> list[date]:
    """The explicit `dates` from config if any, else the series over the data; at most
    `max_snapshots` of them, else a LakemlError (a day in 1970 or a daily series over years
    would otherwise make thousands of snapshots).

    Dates on or before the first day of data are dropped: nobody is in their population.
    """
    if cfg.dates:
        # The config checked that every entry is a YYYY-MM-DD date when it loaded.
        dates = sorted(s for s in {date.fromisoformat(text) for text in cfg.dates} if s > first_day)
        asked = f"features.snapshots.dates lists {len(dates)} dates after the first day of data"
        fix = "list fewer dates"
    else:
        origin = date.fromisoformat(cfg.origin)
        dates = snapshot_series(first_day, last_day, cfg.every_days, cfg.min_history_days, origin)
        asked = (
            f"a snapshot every {cfg.every_days} days from {first_day} to {last_day} (the event "
            f"days in silver) gives {len(dates)} snapshots"
        )
        fix = "raise features.snapshots.every_days"
    if len(dates) > cfg.max_snapshots:
        raise LakemlError(
            f"{asked}, more than features.snapshots.max_snapshots ({cfg.max_snapshots}); "
            f"{fix}, or raise max_snapshots if you mean it"
        )
    return dates


def labelled_dates(snapshots: list[date], horizon_days: int, last_day: date) -> list[date]:
    """Snapshots whose label horizon `[S, S + horizon_days - 1]` ends by `last_day`."""
    return [s for s in snapshots if s + timedelta(days=horizon_days - 1) <= last_day]


def snapshot_frame(spark: SparkSession, dates: list[date]) -> DataFrame:
    """The snapshot dates as a one-column DataFrame, small enough to broadcast.

    Built from literals, so it is a local relation in the JVM (no RDD of Python rows).
    """
    values = F.array(*[F.lit(d) for d in sorted(set(dates))]).cast("array<date>")
    return spark.range(1).select(F.explode(values).alias("snapshot_date"))


@dataclass(frozen=True)
class LogColumns:
    """What gold must know of the event log beyond the features: the entity and event-type
    columns, the event types after which an entity has churned (a `churn_event` target) and
    how recently an entity must have been active to be in a snapshot (None: ever)."""

    entity: str
    event_type: str = ""
    churn_events: tuple[str, ...] = ()
    active_within_days: int | None = None

    @classmethod
    def of(cls, source: EventSourceSpec, features: FeaturesConfig) -> LogColumns:
        target = features.target
        churn = tuple(target.event_types) if target and target.kind == "churn_event" else ()
        return cls(source.entity, source.event_type, churn, features.active_within_days)


def lifecycle(silver: DataFrame, log: LogColumns) -> DataFrame:
    """Per entity: first event day and first churn event day (null if none, or no such
    target)."""
    churned = F.lit(None).cast("date")
    if log.churn_events:
        is_churn = F.col(log.event_type).isin(list(log.churn_events))
        churned = F.min(F.when(is_churn, F.col("event_date")))
    return silver.groupBy(log.entity).agg(
        F.min("event_date").alias("first_event_date"), churned.alias("churn_date")
    )


def population(silver: DataFrame, snapshots: DataFrame, log: LogColumns) -> DataFrame:
    """(entity, snapshot_date, churn_date) for entities with an event before S (within
    `active_within_days` of it, if set) and no churn event before S."""
    s = F.col(SNAPSHOT)
    seen_before = F.col("first_event_date") < s
    not_churned_yet = F.col("churn_date").isNull() | (F.col("churn_date") >= s)
    found = lifecycle(silver, log).join(F.broadcast(snapshots), seen_before & not_churned_yet)
    found = found.select(F.col(log.entity), s, F.col("churn_date"))
    if log.active_within_days is None:
        return found
    recent = F.col("event_date").between(F.date_sub(s, log.active_within_days), F.date_sub(s, 1))
    active = (
        silver.select(log.entity, "event_date")
        .distinct()
        .join(F.broadcast(snapshots), recent)
        .select(log.entity, SNAPSHOT)
    )
    return found.join(active, on=[log.entity, SNAPSHOT], how="left_semi")
