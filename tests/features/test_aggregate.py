"""Each aggregation kind of `features.aggregations` on a tiny log, against hand counts.

The log: customers a and b, snapshot S = 2024-01-15, one 7-day window ([01-08, 01-14]) and
all history. a's event at S 00:00 never counts; its event at 01-14 23:59:59 does.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from lakeml.core.errors import LakemlError
from lakeml.core.event_spec import Aggregation
from lakeml.features.aggregate import build_features
from lakeml.features.snapshots import LogColumns

S = date(2024, 1, 15)
LOG = LogColumns(entity="cid", event_type="kind")
SCHEMA = (
    "cid string, ts timestamp, event_date date, kind string, amount double, qty long, "
    "shop string, tier string, joined timestamp"
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def ev(cid: str, ts: str, kind: str, amount: float, qty: int, shop: str, tier: str) -> tuple:
    joined = {"a": "2023-12-01", "b": "2023-11-15", "c": "2024-01-15"}[cid]
    t = utc(ts)
    return (cid, t, t.date(), kind, amount, qty, shop, tier, utc(f"{joined} 08:00:00"))


EVENTS = [
    ev("a", "2024-01-01 10:00:00", "buy", 10.0, 1, "x", "gold"),  # before the 7-day window
    ev("a", "2024-01-08 09:00:00", "buy", 20.5, 2, "y", "gold"),  # S - 7: the window's first day
    ev("a", "2024-01-10 12:00:00", "return", 5.0, 1, "y", "silver"),
    ev("a", "2024-01-14 23:59:59", "buy", 4.25, 3, "y", "silver"),  # just before S: counts
    ev("a", "2024-01-15 00:00:00", "buy", 100.0, 9, "z", "platinum"),  # at S: never counts
    ev("b", "2023-12-20 18:00:00", "buy", 7.0, 1, "x", "bronze"),
    ev("c", "2024-01-15 09:00:00", "buy", 1.0, 1, "x", "gold"),  # first seen at S: not in S
]


def agg(name: str, kind: str, **values: Any) -> Aggregation:
    return Aggregation(name=name, kind=kind, **values)


BUY = {"kind": "buy"}
AGGREGATIONS = [
    agg("buys", "count", where=BUY),
    agg("returns", "count", where={"kind": "return"}),
    agg("spend", "sum", column="amount", where=BUY, decimals=2),
    agg("avg_spend", "mean", column="amount", where=BUY, decimals=2),
    agg("min_amount", "min", column="amount"),
    agg("max_qty", "max", column="qty"),
    agg("shops", "distinct", column="shop"),
    agg("days", "active_days"),
    agg("return_share", "ratio", numerator="returns", denominator="buys"),
    agg("since_buy", "days_since", where=BUY),
    agg("since_joined", "days_since", column="joined"),
    agg("tier", "latest", column="tier"),
    agg("is_silver", "latest", column="tier", equals="silver"),
    agg("buys_trend", "trend", of="buys", recent=7, base=14),
    agg("spend_hundreds", "sum", column="amount", scale=100, windows=[], decimals=2),
]
# By hand from EVENTS (window 7d = 01-08..01-14; total = every day before S).
EXPECTED = {
    "a": {
        "buys_7d": 2, "buys_total": 3, "returns_7d": 1, "returns_total": 1,
        "spend_7d": 24.75, "spend_total": 34.75,
        "avg_spend_7d": 12.375, "avg_spend_total": 34.75 / 3,
        "min_amount_7d": 4.25, "min_amount_total": 4.25,
        "max_qty_7d": 3.0, "max_qty_total": 3.0,
        "shops_7d": 1, "shops_total": 2, "days_7d": 3, "days_total": 4,
        "return_share_7d": 0.5, "return_share_total": 1 / 3,
        "since_buy": 1, "since_joined": 45, "tier": "silver", "is_silver": 1,
        # recent 7 days 2 buys, 14 days 3: (2 + 1) / ((3 - 2) / (7 / 7) + 1)
        "buys_trend": 1.5, "spend_hundreds_total": 0.3975,  # every kind: 39.75 / 100
    },
    "b": {
        "buys_7d": 0, "buys_total": 1, "returns_7d": 0, "returns_total": 0,
        "spend_7d": 0.0, "spend_total": 7.0,
        "avg_spend_7d": None, "avg_spend_total": 7.0,
        "min_amount_7d": None, "min_amount_total": 7.0,
        "max_qty_7d": None, "max_qty_total": 1.0,
        "shops_7d": 0, "shops_total": 1, "days_7d": 0, "days_total": 1,
        "return_share_7d": 0.0, "return_share_total": 0.0,
        "since_buy": 26, "since_joined": 61, "tier": "bronze", "is_silver": 0,
        "buys_trend": 1.0, "spend_hundreds_total": 0.07,
    },
}  # fmt: skip


def log(spark: SparkSession, rows: list[tuple] = EVENTS) -> DataFrame:
    return spark.createDataFrame(rows, SCHEMA)


def test_every_aggregation_kind_matches_hand_counts(spark: SparkSession) -> None:
    actual = build_features(log(spark), [S], [7], AGGREGATIONS, LOG)

    rows = {r["cid"]: r.asDict() for r in actual.collect()}
    assert sorted(rows) == ["a", "b"]  # c is first seen at S
    for cid, want in EXPECTED.items():
        got = {k: rows[cid][k] for k in want}
        assert got == pytest.approx(want), cid
        assert rows[cid]["snapshot_date"] == S
    assert actual.columns == ["cid", "snapshot_date", *EXPECTED["a"]]


def test_an_event_at_the_snapshot_never_counts_and_one_just_before_does(
    spark: SparkSession,
) -> None:
    base = [e for e in EVENTS if e[0] == "b"]
    at_s = ev("b", "2024-01-15 00:00:00", "buy", 50.0, 5, "z", "gold")
    just_before = ev("b", "2024-01-14 23:59:59", "buy", 50.0, 5, "z", "gold")
    aggs = [agg("buys", "count", where=BUY), agg("since_buy", "days_since", where=BUY)]

    def features(rows: list[tuple]) -> dict[str, Any]:
        return build_features(log(spark, rows), [S], [7], aggs, LOG).first().asDict()

    assert features(base) == features([*base, at_s])
    assert features([*base, just_before])["buys_7d"] == 1
    assert features([*base, just_before])["since_buy"] == 1


def test_column_types_follow_the_kind(spark: SparkSession) -> None:
    actual = dict(build_features(log(spark), [S], [7], AGGREGATIONS, LOG).dtypes)
    assert actual["buys_7d"] == actual["shops_total"] == actual["days_7d"] == "bigint"
    assert actual["spend_7d"] == actual["avg_spend_7d"] == actual["buys_trend"] == "double"
    assert actual["since_buy"] == "bigint" and actual["is_silver"] == "int"
    assert actual["tier"] == "string"


def test_a_column_the_log_lacks_is_named(spark: SparkSession) -> None:
    with pytest.raises(LakemlError, match="lack column.*discount"):
        build_features(log(spark), [S], [7], [agg("d", "sum", column="discount")], LOG)
