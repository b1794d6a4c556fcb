"""Labels: what happened to each entity of the snapshot population in the horizon after S.

Labels only look at and after S (`[S, S + horizon - 1]`), features only before it, so no
label information leaks into features. A snapshot whose horizon runs past the last day of
data gets no labels: its outcome is not known yet (scoring uses its features). The target
(`features.target`) says what counts: a churn event, no activity (inactivity), or any
other event of given types.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeml.core.event_spec import TargetConfig
from lakeml.features.snapshots import (
    SNAPSHOT,
    LogColumns,
    labelled_dates,
    population,
    snapshot_frame,
)


def build_labels(
    silver: DataFrame,
    snapshot_dates: list[date],
    horizon_days: int,
    last_day: date,
    target: TargetConfig,
    log: LogColumns,
) -> DataFrame:
    """(entity, snapshot_date, label 0/1) for snapshots fully observed by `last_day`.

    `last_day` is the last complete day of events in silver.
    """
    observed = labelled_dates(snapshot_dates, horizon_days, last_day)
    snapshots = snapshot_frame(silver.sparkSession, observed)
    s = F.col(SNAPSHOT)
    in_horizon_of = (s, F.date_add(s, horizon_days - 1))
    people = population(silver, snapshots, log)
    keys = [log.entity, SNAPSHOT]
    if target.kind == "churn_event":
        # The population has no churn event before S, so the first one is the one that counts.
        hit = F.col("churn_date").between(*in_horizon_of)
    else:
        events = silver
        if target.event_types:
            events = silver.where(F.col(log.event_type).isin(list(target.event_types)))
        hits = (
            events.select(log.entity, "event_date")
            .distinct()
            .join(F.broadcast(snapshots), F.col("event_date").between(*in_horizon_of))
            .select(*keys)
            .distinct()
            .withColumn("__hit", F.lit(True))
        )
        people = people.join(hits, on=keys, how="left")
        hit = F.col("__hit")
    label = F.coalesce(hit, F.lit(False))
    if target.kind == "inactivity":
        label = ~label
    return people.select(F.col(log.entity), s, label.cast("int").alias(target.label_col))
