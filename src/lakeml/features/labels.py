"""Churn labels: did a user in the snapshot population cancel within the horizon after S?

Labels only look at and after S (`[S, S + horizon - 1]`), features only before it, so no
label information leaks into features. A snapshot whose horizon runs past the last day of
data gets no labels: its outcome is not known yet (scoring uses its features).
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeml.features.snapshots import labelled_dates, population, snapshot_frame, user_lifecycle


def build_labels(
    silver: DataFrame, snapshot_dates: list[date], horizon_days: int, last_day: date
) -> DataFrame:
    """(user_id, snapshot_date, churned 0/1) for snapshots fully observed by `last_day`.

    `last_day` is the last complete day of events in silver.
    """
    observed = labelled_dates(snapshot_dates, horizon_days, last_day)
    snapshots = snapshot_frame(silver.sparkSession, observed)
    s = F.col("snapshot_date")
    # The population has no cancellation before S, so the first one is the one that counts.
    cancels_in_horizon = F.col("cancellation_date").between(s, F.date_add(s, horizon_days - 1))
    return population(user_lifecycle(silver), snapshots).select(
        F.col("user_id"),
        F.col("snapshot_date"),
        F.coalesce(cancels_in_horizon, F.lit(False)).cast("int").alias("churned"),
    )
