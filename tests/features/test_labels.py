from __future__ import annotations

from datetime import date

from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import types as T
from sparkify import LOG, TARGET

from lakeml.features import labels

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


def build_labels(events, snapshots, horizon_days, last_day):  # noqa: ANN001, ANN201
    """The Sparkify preset's labels: a cancellation within the horizon."""
    return labels.build_labels(events, snapshots, horizon_days, last_day, TARGET, LOG)


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


# A log of buys, returns and upgrades: the target kinds other than a churn event.
LOG_EVENTS = "cid string, event_date date, kind string"
S2, LAST = d("2024-01-15"), d("2024-01-31")


def generic_labels(spark: SparkSession, target: dict, rows: list, **log: object) -> dict:
    from lakeml.core.event_spec import TargetConfig
    from lakeml.features.snapshots import LogColumns

    events = spark.createDataFrame(rows, LOG_EVENTS)
    columns = LogColumns(entity="cid", event_type="kind", **log)  # type: ignore[arg-type]
    out = labels.build_labels(
        events, [S2, d("2024-01-29")], 7, LAST, TargetConfig(**target), columns
    )
    # 01-29's horizon [01-29, 02-04] ends after the last day of data: no labels for it.
    assert {r["snapshot_date"] for r in out.collect()} <= {S2}
    return {r["cid"]: r["churned"] for r in out.collect()}


def test_inactivity_labels_entities_without_an_event_of_the_types_in_the_horizon(
    spark: SparkSession,
) -> None:
    rows = [
        ("buys_again", d("2024-01-10"), "buy"),
        ("buys_again", d("2024-01-21"), "buy"),  # S + 6: in the horizon
        ("buys_late", d("2024-01-10"), "buy"),
        ("buys_late", d("2024-01-22"), "buy"),  # S + 7: after it
        ("only_returns", d("2024-01-10"), "buy"),
        ("only_returns", d("2024-01-16"), "return"),  # not a buy
        ("long_gone", d("2023-11-01"), "buy"),  # nothing in the 30 days before S
    ]
    target = {"kind": "inactivity", "event_types": ["buy"]}
    assert generic_labels(spark, target, rows, active_within_days=30) == {
        "buys_again": 0,
        "buys_late": 1,
        "only_returns": 1,
    }
    # Without a type, any event is activity; without active_within_days, anyone seen before.
    assert generic_labels(spark, {"kind": "inactivity"}, rows) == {
        "buys_again": 0,
        "buys_late": 1,
        "only_returns": 0,
        "long_gone": 1,
    }


def test_an_event_target_labels_entities_with_one_in_the_horizon(spark: SparkSession) -> None:
    rows = [
        ("upgrades", d("2024-01-10"), "buy"),
        ("upgrades", d("2024-01-15"), "upgrade"),  # S: in the horizon
        ("upgraded_before", d("2024-01-10"), "upgrade"),  # before S: still in, label 0
        ("upgrades_late", d("2024-01-10"), "buy"),
        ("upgrades_late", d("2024-01-22"), "upgrade"),
    ]
    target = {"kind": "event", "event_types": ["upgrade"], "label_col": "churned"}
    assert generic_labels(spark, target, rows) == {
        "upgrades": 1,
        "upgraded_before": 0,
        "upgrades_late": 0,
    }
