from __future__ import annotations

from datetime import date, timedelta

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import types as T
from sparkify import LOG

from lakeml.core.config import SnapshotConfig
from lakeml.core.errors import LakemlError
from lakeml.features.snapshots import (
    event_day_range,
    labelled_dates,
    population,
    snapshot_dates,
    snapshot_frame,
    snapshot_series,
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
    # The default origin 1970-01-05 is a Monday, and so is 2018-10-01 (a calendar says so):
    # Mondays up to D + 1 = 10-21 are 10-15, 10-08, 10-01; 10-01 < 10-01 + 7 days = 10-08.
    assert snapshot_dates(weekly, first, last) == [d("2018-10-08"), d("2018-10-15")]
    five = SnapshotConfig(every_days=5, min_history_days=3, origin="2018-10-02")
    # 10-02, 10-07, 10-12, 10-17 (10-22 > D + 1 = 10-21); 10-02 < 10-01 + 3 days = 10-04
    assert snapshot_dates(five, first, last) == [
        d("2018-10-07"),
        d("2018-10-12"),
        d("2018-10-17"),
    ]
    # The same grid from an origin long before the data: 1970-01-01 is day 0 and 2018-10-02
    # day 17806 = 5 * 3561 + 1, so 1970-01-02 (day 1) lies on it too.
    far = SnapshotConfig(every_days=5, min_history_days=3, origin="1970-01-02")
    assert snapshot_dates(far, first, last) == snapshot_dates(five, first, last)


def test_series_keeps_a_snapshot_exactly_min_history_days_after_the_first_day() -> None:
    # 10-01 + 7 days = 10-08, a Monday like the origin 2018-01-01, is kept
    assert snapshot_series(d("2018-10-01"), d("2018-10-14"), 7, 7, d("2018-01-01")) == [
        d("2018-10-08"),
        d("2018-10-15"),
    ]


def test_weekly_series_stays_on_its_weekday_as_days_arrive() -> None:
    weekly = SnapshotConfig(every_days=7, min_history_days=7)
    # Data from Monday 10-01: whatever the last day from 10-14 to 10-20, the snapshots are
    # the Mondays 10-08 and 10-15 (D + 1 reaches the next Monday, 10-22, only with D = 10-21).
    for last in range(14, 21):
        assert snapshot_dates(weekly, d("2018-10-01"), d(f"2018-10-{last}")) == [
            d("2018-10-08"),
            d("2018-10-15"),
        ], last
    assert snapshot_dates(weekly, d("2018-10-01"), d("2018-10-21"))[-1] == d("2018-10-22")


def test_more_snapshots_than_max_snapshots_is_a_one_line_error() -> None:
    daily = SnapshotConfig(every_days=1, min_history_days=0, max_snapshots=300)
    # Data 2018-10-01..2019-07-26: daily snapshots 10-02..07-27, 30 + 30 + 31 + 31 + 28 + 31
    # + 30 + 31 + 30 + 27 = 299 of them (Oct 2-31, Nov, Dec, ..., Jun, Jul 1-27)
    assert len(snapshot_dates(daily, d("2018-10-01"), d("2019-07-26"))) == 299
    assert len(snapshot_dates(daily, d("2018-10-01"), d("2019-07-27"))) == 300
    with pytest.raises(LakemlError, match=r"gives 301 snapshots.*max_snapshots \(300\)") as e:
        snapshot_dates(daily, d("2018-10-01"), d("2019-07-28"))
    assert "\n" not in str(e.value)
    # A silver whose first day is in 1970 (epoch seconds read as milliseconds) would ask for
    # about 2,500 weekly snapshots up to 2018: refused with the default cap of 500.
    with pytest.raises(LakemlError, match=r"features\.snapshots\.max_snapshots \(500\)"):
        snapshot_dates(SnapshotConfig(), d("1970-01-18"), d("2018-10-20"))
    listed = SnapshotConfig(dates=["2018-10-10", "2018-10-11", "2018-10-12"], max_snapshots=2)
    with pytest.raises(LakemlError, match=r"dates lists 3 dates.*max_snapshots \(2\)"):
        snapshot_dates(listed, d("2018-10-01"), d("2018-10-30"))


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
    actual = population(events, snapshot_frame(spark, [s1, s2]), LOG).select(
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
