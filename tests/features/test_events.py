from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T
from sparkify import AGGREGATIONS, LOG, SILVER

from lakeml.core.errors import LakemlError
from lakeml.features import aggregate


def build_features(silver: DataFrame, dates: list[date], windows: list[int]) -> DataFrame:
    """The Sparkify preset's features."""
    return aggregate.build_features(silver, dates, windows, AGGREGATIONS, LOG)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def ev(
    user: str,
    ts: str,
    page: str = "Home",
    session: int = 1,
    item: int = 0,
    level: str | None = "free",
    artist: str | None = None,
    length: float | None = None,
    gender: str | None = "F",
    state: str | None = "CA",
    platform: str | None = "Mac",
    registration: str = "2018-09-01 00:00:00",
) -> tuple[Any, ...]:
    t = utc(ts)
    return (user, session, item, t, t.date(), page, level, artist, length, gender, state,
            platform, utc(registration))  # fmt: skip


def song(user: str, ts: str, artist: str, length: float, **kw: Any) -> tuple[Any, ...]:
    return ev(user, ts, page="NextSong", artist=artist, length=length, **kw)


def silver(spark: SparkSession, rows: list[tuple[Any, ...]]) -> DataFrame:
    return spark.createDataFrame(rows, SILVER)


def expected_frame(spark: SparkSession, rows: list[list[tuple[str, Any]]]) -> DataFrame:
    """Rows of (column, value); ints are longs except the 0/1 flag `is_paid`."""

    def typ(name: str, value: Any) -> T.DataType:
        if name == "is_paid":
            return T.IntegerType()
        if isinstance(value, date):
            return T.DateType()
        return {int: T.LongType(), float: T.DoubleType(), str: T.StringType()}[type(value)]

    schema = T.StructType([T.StructField(n, typ(n, v)) for n, v in rows[0]])
    return spark.createDataFrame([tuple(v for _, v in r) for r in rows], schema)


S = date(2018, 10, 29)


def test_features_for_an_active_and_a_quiet_user_match_hand_counts(spark: SparkSession) -> None:
    # S = 2018-10-29, windows 7 -> [10-22, 10-28] and 28 -> [10-01, 10-28].
    rows = [
        # u1, S-29 (only in total): session 5
        song("u1", "2018-09-30 10:00:00", "D", 30.0, session=5),
        # u1, S-27: session 10, free, Windows
        song("u1", "2018-10-02 10:00:00", "A", 120.0, session=10, item=1, platform="Windows"),
        song("u1", "2018-10-02 10:02:00", "B", 180.0, session=10, item=2, platform="Windows"),
        ev("u1", "2018-10-02 10:05:00", "Thumbs Up", session=10, item=3, platform="Windows"),
        ev("u1", "2018-10-02 10:06:00", "Roll Advert", session=10, item=4, platform="Windows"),
        # u1, S-9: session 20, upgrades
        song("u1", "2018-10-20 10:00:00", "A", 60.0, session=20, item=1),
        ev("u1", "2018-10-20 10:01:00", "Thumbs Down", session=20, item=2),
        ev("u1", "2018-10-20 10:02:00", "Add Friend", session=20, item=3),
        ev("u1", "2018-10-20 10:03:00", "Submit Upgrade", session=20, item=4),
        # u1, session 30 spans midnight S-4 -> S-3, paid, NY
        song("u1", "2018-10-25 23:50:00", "C", 240.0, session=30, item=1, level="paid", state="NY"),
        song("u1", "2018-10-26 00:10:00", "A", 300.0, session=30, item=2, level="paid", state="NY"),
        ev(
            "u1",
            "2018-10-26 00:20:00",
            "Add to Playlist",
            session=30,
            item=3,
            level="paid",
            state="NY",
        ),  # fmt: skip
        ev("u1", "2018-10-26 00:21:00", "Help", session=30, item=4, level="paid", state="NY"),
        ev("u1", "2018-10-26 00:22:00", "Settings", session=30, item=5, level="paid", state="NY"),
        ev("u1", "2018-10-26 00:23:00", "Downgrade", session=30, item=6, level="paid", state="NY"),
        ev("u1", "2018-10-26 00:24:00", "Error", session=30, item=7, level="paid", state="NY"),
        # u2: one Home visit on S-20, registered that day
        ev(
            "u2",
            "2018-10-09 08:00:00",
            session=40,
            gender="M",
            state="TX",
            platform="Linux",
            registration="2018-10-09 07:00:00",
        ),  # fmt: skip
    ]
    actual = build_features(silver(spark, rows), [S], [28, 7])

    u1 = [
        ("user_id", "u1"),
        ("snapshot_date", S),
        # sessions: 7d {30}; 28d {10, 20, 30}; total + {5}
        ("sessions_7d", 1), ("sessions_28d", 3), ("sessions_total", 4),
        # songs: 7d C, A; 28d + A, B, A; total + D
        ("songs_7d", 2), ("songs_28d", 5), ("songs_total", 6),
        # minutes: (240 + 300) / 60 = 9; + (120 + 180 + 60) / 60 = 15; + 30 / 60 = 15.5
        ("listen_minutes_7d", 9.0), ("listen_minutes_28d", 15.0), ("listen_minutes_total", 15.5),
        # artists: {C, A}; {A, B, C}; {A, B, C, D}
        ("distinct_artists_7d", 2), ("distinct_artists_28d", 3), ("distinct_artists_total", 4),
        # 2 / 1; 5 / 3; 6 / 4
        ("songs_per_session_7d", 2.0), ("songs_per_session_28d", 5 / 3),
        ("songs_per_session_total", 1.5),
        # days: 10-25, 10-26; + 10-02, 10-20; + 09-30
        ("active_days_7d", 2), ("active_days_28d", 4), ("active_days_total", 5),
        ("thumbs_up_7d", 0), ("thumbs_up_28d", 1), ("thumbs_up_total", 1),
        ("thumbs_down_7d", 0), ("thumbs_down_28d", 1), ("thumbs_down_total", 1),
        ("playlist_adds_7d", 1), ("playlist_adds_28d", 1), ("playlist_adds_total", 1),
        ("friends_added_7d", 0), ("friends_added_28d", 1), ("friends_added_total", 1),
        ("adverts_7d", 0), ("adverts_28d", 1), ("adverts_total", 1),
        ("errors_7d", 1), ("errors_28d", 1), ("errors_total", 1),
        ("help_visits_7d", 1), ("help_visits_28d", 1), ("help_visits_total", 1),
        ("downgrade_visits_7d", 1), ("downgrade_visits_28d", 1), ("downgrade_visits_total", 1),
        ("settings_visits_7d", 1), ("settings_visits_28d", 1), ("settings_visits_total", 1),
        # 1 / 5 songs in 28 days; 1 / 6 songs in total
        ("thumbs_up_per_song_28d", 0.2), ("thumbs_up_per_song_total", 1 / 6),
        ("thumbs_down_per_song_28d", 0.2), ("thumbs_down_per_song_total", 1 / 6),
        ("adverts_per_song_28d", 0.2), ("adverts_per_song_total", 1 / 6),
        ("is_paid", 1),  # last event (10-26) is paid
        ("upgrades_total", 1),
        ("downgrades_total", 0),  # a Downgrade page visit is not a Submit Downgrade
        ("days_since_registration", 58),  # 09-01 -> 10-01 is 30 days, -> 10-29 is 28 more
        ("days_since_last_activity", 3),  # 10-29 - 10-26
        ("songs_trend", 1.5),  # (2 + 1) / ((5 - 2) / 3 + 1)
        ("sessions_trend", 1.2),  # (1 + 1) / ((3 - 1) / 3 + 1) = 2 / (5/3)
        ("listen_minutes_trend", 10 / 3),  # (9 + 1) / ((15 - 9) / 3 + 1)
        ("active_days_trend", 1.8),  # (2 + 1) / ((4 - 2) / 3 + 1) = 3 / (5/3)
        ("gender", "F"), ("state", "NY"), ("platform", "Mac"),
    ]  # fmt: skip
    quiet = dict(u1)
    for name, value in u1:
        if isinstance(value, (int, float)) and name != "is_paid":
            quiet[name] = type(value)(0)
    u2 = {
        **quiet,
        "user_id": "u2",
        # one session and one active day on 10-09, inside 28 days, outside 7
        "sessions_28d": 1, "sessions_total": 1, "active_days_28d": 1, "active_days_total": 1,
        "is_paid": 0,
        "days_since_registration": 20,  # 10-29 - 10-09
        "days_since_last_activity": 20,
        "songs_trend": 1.0,  # (0 + 1) / (0 / 3 + 1)
        "sessions_trend": 0.75,  # (0 + 1) / ((1 - 0) / 3 + 1)
        "listen_minutes_trend": 1.0,
        "active_days_trend": 0.75,  # (0 + 1) / ((1 - 0) / 3 + 1)
        "gender": "M", "state": "TX", "platform": "Linux",
    }  # fmt: skip
    expected = expected_frame(spark, [u1, list(u2.items())])
    assert_approx_df_equality(actual, expected, 1e-9, ignore_nullable=True, ignore_row_order=True)


def test_events_at_or_after_snapshot_date_never_reach_features(spark: SparkSession) -> None:
    before = [
        song("u1", "2018-10-27 09:00:00", "A", 200.0, session=1, item=1),
        ev("u1", "2018-10-28 23:59:59", "Thumbs Up", session=2, item=1),
    ]
    # Exactly S 00:00:00 and later: every kind of event a feature counts, and new latest values.
    at_or_after = [
        song(
            "u1",
            "2018-10-29 00:00:00",
            "Z",
            100.0,
            session=2,
            item=2,
            level="paid",
            state="NY",
            platform="Windows",
            gender="M",
        ),  # fmt: skip
        ev("u1", "2018-10-29 00:00:00", "Submit Upgrade", session=2, item=3, level="paid"),
        *[
            ev("u1", "2018-10-30 12:00:00", page, session=3, item=i, level="paid")
            for i, page in enumerate(
                [
                    "Thumbs Up",
                    "Thumbs Down",
                    "Add to Playlist",
                    "Add Friend",
                    "Roll Advert",
                    "Error",
                    "Help",
                    "Downgrade",
                    "Settings",
                    "Submit Downgrade",
                ]
            )
        ],  # fmt: skip
        # a user first seen at S is not in the population of S
        song("u2", "2018-10-29 00:00:00", "A", 100.0, session=9),
    ]
    without = build_features(silver(spark, before), [S], [7, 14])
    with_later = build_features(silver(spark, before + at_or_after), [S], [7, 14])
    assert_df_equality(with_later, without)
    assert without.count() == 1  # the comparison is not between two empty frames


def test_window_includes_day_s_minus_w_and_excludes_s_minus_w_minus_1(
    spark: SparkSession,
) -> None:
    rows = [
        song("u1", "2018-10-07 12:00:00", "A", 60.0, session=1),  # S1 - 8
        song("u1", "2018-10-08 00:00:00", "B", 60.0, session=2),  # S1 - 7 (first second)
    ]
    s1, s2 = date(2018, 10, 15), date(2018, 10, 22)
    actual = build_features(silver(spark, rows), [s2, s1], [7, 14]).select(
        "user_id", "snapshot_date", "songs_7d", "songs_14d", "sessions_7d", "songs_total"
    )
    expected = expected_frame(
        spark,
        [
            # S1 = 10-15: 7d = [10-08, 10-14] has 10-08 only; 14d = [10-01, 10-14] both
            [("user_id", "u1"), ("snapshot_date", s1), ("songs_7d", 1), ("songs_14d", 2),
             ("sessions_7d", 1), ("songs_total", 2)],
            # S2 = 10-22: 7d = [10-15, 10-21] none; 14d = [10-08, 10-21] has 10-08, not 10-07
            [("user_id", "u1"), ("snapshot_date", s2), ("songs_7d", 0), ("songs_14d", 1),
             ("sessions_7d", 0), ("songs_total", 2)],
        ],
    )  # fmt: skip
    assert_df_equality(actual, expected, ignore_nullable=True, ignore_row_order=True)


def test_population_excludes_users_who_cancelled_before_the_snapshot(spark: SparkSession) -> None:
    rows = [
        ev("gone", "2018-10-20 10:00:00", "Cancel", session=1, item=1),
        ev("gone", "2018-10-20 10:01:00", "Cancellation Confirmation", session=1, item=2),
        # cancels on S itself: still in the population of S (that is what labels predict)
        ev("leaving", "2018-10-20 10:00:00", session=2),
        ev("leaving", "2018-10-29 00:30:00", "Cancellation Confirmation", session=3),
        ev("staying", "2018-10-28 10:00:00", session=4),
    ]
    actual = build_features(silver(spark, rows), [S], [7]).select("user_id", "snapshot_date")
    expected = expected_frame(
        spark, [[("user_id", "leaving"), ("snapshot_date", S)],
                [("user_id", "staying"), ("snapshot_date", S)]]
    )  # fmt: skip
    assert_df_equality(actual, expected, ignore_nullable=True, ignore_row_order=True)


def test_categoricals_and_level_take_the_latest_known_value_before_s(spark: SparkSession) -> None:
    rows = [
        ev("u1", "2018-10-20 10:00:00", state="CA", platform="Mac", level="free"),
        ev("u1", "2018-10-21 10:00:00", state="NY", platform="Windows", level="paid", item=1),
        # later the same day, a value is missing: the last known one stands
        ev("u1", "2018-10-21 11:00:00", state=None, platform="Linux", level="paid", item=2),
        ev("u1", "2018-10-29 00:00:00", state="TX", platform="iPhone", level="free"),  # at S
    ]
    actual = build_features(silver(spark, rows), [S], [7]).select(
        "user_id", "is_paid", "state", "platform"
    )
    expected = expected_frame(
        spark,
        [[("user_id", "u1"), ("is_paid", 1), ("state", "NY"), ("platform", "Linux")]],
    )
    assert_df_equality(actual, expected, ignore_nullable=True)


def test_no_snapshot_dates_give_an_empty_frame_with_the_schema(spark: SparkSession) -> None:
    rows = [ev("u1", "2018-10-20 10:00:00")]
    actual = build_features(silver(spark, rows), [], [7])
    assert actual.count() == 0
    assert actual.columns[:3] == ["user_id", "snapshot_date", "sessions_7d"]


def test_missing_silver_columns_are_named(spark: SparkSession) -> None:
    df = silver(spark, [ev("u1", "2018-10-20 10:00:00")]).drop("artist")
    with pytest.raises(LakemlError, match="lack column.*artist"):
        build_features(df, [S], [7])
