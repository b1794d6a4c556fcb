from __future__ import annotations

from datetime import date

from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from lakeml.features.labels import build_labels

EVENTS = T.StructType(
    [
        T.StructField("user_id", T.StringType()),
        T.StructField("event_date", T.DateType()),
        T.StructField("page", T.StringType()),
    ]
)
LABELS = T.StructType(
    [
        T.StructField("user_id", T.StringType()),
        T.StructField("snapshot_date", T.DateType()),
        T.StructField("churned", T.IntegerType()),
    ]
)
CANCEL = "Cancellation Confirmation"


def d(text: str) -> date:
    return date.fromisoformat(text)


def test_labels_only_look_after_the_snapshot(spark: SparkSession) -> None:
    # S = 10-15, horizon 7 days: churn counts if the cancellation is on [10-15, 10-21].
    s = d("2018-10-15")
    events = spark.createDataFrame(
        [
            ("before_s", d("2018-10-10"), "Home"),
            ("before_s", d("2018-10-14"), CANCEL),  # cancelled before S: not in the population
            ("on_s", d("2018-10-10"), "Home"),
            ("on_s", d("2018-10-15"), CANCEL),  # S
            ("last_day", d("2018-10-10"), "Home"),
            ("last_day", d("2018-10-21"), CANCEL),  # S + h - 1
            ("too_late", d("2018-10-10"), "Home"),
            ("too_late", d("2018-10-22"), CANCEL),  # S + h: outside the horizon
            ("stays", d("2018-10-10"), "NextSong"),
            ("stays", d("2018-10-20"), "NextSong"),
            ("new_at_s", d("2018-10-15"), "NextSong"),  # no event before S: not in it
        ],
        EVENTS,
    )
    actual = build_labels(events, [s], horizon_days=7, last_day=d("2018-10-30"))
    expected = spark.createDataFrame(
        [("on_s", s, 1), ("last_day", s, 1), ("too_late", s, 0), ("stays", s, 0)], LABELS
    )
    assert_df_equality(actual, expected, ignore_nullable=True, ignore_row_order=True)


def test_snapshots_with_unobserved_horizons_get_no_label(spark: SparkSession) -> None:
    events = spark.createDataFrame(
        [
            ("u1", d("2018-10-01"), "NextSong"),
            ("u1", d("2018-10-20"), CANCEL),
        ],
        EVENTS,
    )
    # horizon 7, last day 10-20: 10-08 + 6 = 10-14 is observed; 10-15 + 6 = 10-21 is not,
    # although the cancellation on 10-20 is already known.
    actual = build_labels(
        events, [d("2018-10-08"), d("2018-10-15")], horizon_days=7, last_day=d("2018-10-20")
    )
    expected = spark.createDataFrame([("u1", d("2018-10-08"), 0)], LABELS)
    assert_df_equality(actual, expected, ignore_nullable=True)
