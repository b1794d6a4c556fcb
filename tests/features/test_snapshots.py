from __future__ import annotations

from datetime import date, timedelta

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from lakeml.core.config import SnapshotConfig
from lakeml.core.errors import LakemlError
from lakeml.features.snapshots import (
    event_day_range,
    labelled_dates,
    population,
    snapshot_dates,
    snapshot_frame,
    snapshot_series,
    user_lifecycle,
)

EVENTS = T.StructType(
    [
        T.StructField("user_id", T.StringType()),
        T.StructField("event_date", T.DateType()),
        T.StructField("page", T.StringType()),
    ]
)
KEYS = T.StructType(
    [T.StructField("user_id", T.StringType()), T.StructField("snapshot_date", T.DateType())]
)


def d(text: str) -> date:
    return date.fromisoformat(text)


def test_snapshot_series_from_a_20_day_toy_log(spark: SparkSession) -> None:
    # One event a day from 2018-10-01 to 2018-10-20: the last complete day D is 10-20.
    days = [d("2018-10-01") + timedelta(days=i) for i in range(20)]
    log = spark.createDataFrame([("u1", day, "Home") for day in days], EVENTS)
    first, last = event_day_range(log)
    assert (first, last) == (d("2018-10-01"), d("2018-10-20"))

    weekly = SnapshotConfig(every_days=7, min_history_days=7)
    # D + 1 = 10-21, 10-14; 10-07 < 10-01 + 7 days = 10-08, so it stops there
    assert snapshot_dates(weekly, first, last) == [d("2018-10-14"), d("2018-10-21")]
    five = SnapshotConfig(every_days=5, min_history_days=3)
    # 10-21, 10-16, 10-11, 10-06 >= 10-04; 10-01 < 10-04
    assert snapshot_dates(five, first, last) == [
        d("2018-10-06"),
        d("2018-10-11"),
        d("2018-10-16"),
        d("2018-10-21"),
    ]


def test_series_keeps_a_snapshot_exactly_min_history_days_after_the_first_day() -> None:
    # 10-01 + 7 days = 10-08, and 10-15 - 7 = 10-08 is kept
    assert snapshot_series(d("2018-10-01"), d("2018-10-14"), 7, 7) == [
        d("2018-10-08"),
        d("2018-10-15"),
    ]


def test_explicit_dates_replace_the_series_sorted_and_deduplicated() -> None:
    cfg = SnapshotConfig(dates=["2018-10-20", "2018-10-10", "2018-10-20", "2018-09-01"])
    # 09-01 is before the first day of data (10-01): nobody could be in that snapshot
    assert snapshot_dates(cfg, d("2018-10-01"), d("2018-10-30")) == [
        d("2018-10-10"),
        d("2018-10-20"),
    ]


def test_bad_snapshot_config_names_the_key() -> None:
    with pytest.raises(LakemlError, match=r"features\.snapshots\.dates\[1\]"):
        snapshot_dates(SnapshotConfig(dates=["2018-10-10", "10/20/2018"]), d("2018-10-01"),
                       d("2018-10-30"))  # fmt: skip
    with pytest.raises(LakemlError, match=r"features\.snapshots\.every_days"):
        snapshot_dates(SnapshotConfig(every_days=0), d("2018-10-01"), d("2018-10-30"))


def test_empty_silver_has_no_day_range(spark: SparkSession) -> None:
    assert event_day_range(spark.createDataFrame([], EVENTS)) is None


def test_only_fully_observed_horizons_are_labelled() -> None:
    # horizon 7: S + 6 <= D = 10-20 holds for 10-14 (10-20) but not 10-15 (10-21)
    snaps = [d("2018-10-07"), d("2018-10-14"), d("2018-10-15")]
    assert labelled_dates(snaps, 7, d("2018-10-20")) == [d("2018-10-07"), d("2018-10-14")]


def test_population_is_users_seen_before_s_and_not_yet_cancelled(spark: SparkSession) -> None:
    events = spark.createDataFrame(
        [
            ("early_churner", d("2018-10-02"), "Home"),
            ("early_churner", d("2018-10-05"), "Cancellation Confirmation"),
            ("churns_on_s2", d("2018-10-03"), "Home"),
            ("churns_on_s2", d("2018-10-10"), "Cancellation Confirmation"),
            ("loyal", d("2018-10-01"), "NextSong"),
            ("newcomer", d("2018-10-09"), "NextSong"),
        ],
        EVENTS,
    )
    s1, s2 = d("2018-10-05"), d("2018-10-10")
    actual = population(user_lifecycle(events), snapshot_frame(spark, [s1, s2])).select(
        "user_id", "snapshot_date"
    )
    expected = spark.createDataFrame(
        [
            # S1 = 10-05: the early churner cancels on S1 itself, so is still in
            ("early_churner", s1),
            ("churns_on_s2", s1),
            ("loyal", s1),
            # S2 = 10-10: early churner gone (cancelled 10-05 < S2); newcomer seen 10-09
            ("churns_on_s2", s2),
            ("loyal", s2),
            ("newcomer", s2),
        ],
        KEYS,
    )
    assert_df_equality(actual, expected, ignore_nullable=True, ignore_row_order=True)
