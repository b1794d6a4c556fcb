"""Drift on features built from events: with unchanged behaviour few features are flagged
against the latest training snapshot (the accumulating ones left out as conf/local.yaml does);
when users start giving far more thumbs down in the scored week, the thumbs-down features are
the ones flagged."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from sparkify import AGGREGATIONS, LOG, SILVER

from lakeml.core.config import load_config
from lakeml.features.aggregate import build_features
from lakeml.scoring import drift, psi

CONF = Path(__file__).resolve().parents[2] / "conf" / "local.yaml"
START = date(2018, 10, 1)
REFERENCE, SCORED = START + timedelta(days=28), START + timedelta(days=35)
USERS = 400
pytestmark = pytest.mark.codegen


def events(spark: SparkSession, thumbs_down_in_scored_week: float) -> DataFrame:
    """Silver-shaped events of USERS users over 35 days: on about 60% of days a session of
    5-14 songs, each followed by a thumbs up (10%) or a thumbs down (4%, or the given rate in
    the week before the scored snapshot)."""
    users = spark.range(USERS).select(
        F.format_string("u%04d", "id").alias("user_id"),
        F.when(F.col("id") % 2 == 0, "F").otherwise("M").alias("gender"),
        F.element_at(
            F.array(*map(F.lit, ["CA", "NY", "TX"])), (F.col("id") % 3 + 1).cast("int")
        ).alias("state"),
        F.lit("Mac").alias("platform"),
    )
    days = spark.range(35).select(F.date_add(F.lit(START), F.col("id").cast("int")).alias("day"))
    active = users.crossJoin(days).filter(F.rand(seed=1) < 0.6)
    songs = active.withColumn(
        "item", F.explode(F.sequence(F.lit(1), (5 + F.floor(F.rand(seed=2) * 10)).cast("int")))
    )
    changed = (F.col("day") >= F.lit(SCORED - timedelta(days=7))) & (F.col("day") < F.lit(SCORED))
    td_rate = F.when(changed, F.lit(thumbs_down_in_scored_week)).otherwise(F.lit(0.04))
    roll = F.rand(seed=3)
    pages = F.when(roll < 0.10, F.array(F.lit("NextSong"), F.lit("Thumbs Up"))).otherwise(
        F.when(roll < 0.10 + td_rate, F.array(F.lit("NextSong"), F.lit("Thumbs Down"))).otherwise(
            F.array(F.lit("NextSong"))
        )
    )
    rows = songs.withColumn("page", F.explode(pages))
    ts = F.to_timestamp(F.col("day")) + F.make_interval(
        mins=(F.col("item") * 4).cast("int"),
        secs=F.when(F.col("page") == "NextSong", 0).otherwise(1),
    )
    out = rows.select(
        "user_id",
        F.abs(F.hash("user_id", "day")).cast("long").alias("session_id"),
        F.col("item").cast("long").alias("item_in_session"),
        ts.alias("ts"),
        F.col("day").alias("event_date"),
        "page",
        F.lit("paid").alias("level"),
        F.when(F.col("page") == "NextSong", F.concat(F.lit("a"), F.col("item") % 7)).alias(
            "artist"
        ),
        F.when(F.col("page") == "NextSong", F.lit(200.0)).alias("length"),
        "gender",
        "state",
        "platform",
        F.to_timestamp(F.lit("2018-09-01")).alias("registration"),
    )
    return out.select(*[F.col(f.name).cast(f.dataType) for f in SILVER.fields])


def flagged(spark: SparkSession, thumbs_down_in_scored_week: float) -> list[str]:
    monitor = load_config(CONF, ["storage.root=/tmp/unused"]).monitor
    feats = build_features(
        events(spark, thumbs_down_in_scored_week), [REFERENCE, SCORED], [7, 14, 28],
        AGGREGATIONS, LOG,
    )  # fmt: skip
    names = [c for c in feats.columns if c not in ("user_id", "snapshot_date")]
    left_out = drift.excluded(names, monitor.exclude)
    kinds = dict(feats.dtypes)
    checked = [
        (n, "string" if kinds[n] == "string" else "double") for n in names if n not in left_out
    ]
    day = F.col("snapshot_date")
    stats = psi.compute_drift(
        feats.filter(day == F.lit(REFERENCE)), feats.filter(day == F.lit(SCORED)), checked, 10
    )
    rows = drift.drift_rows(
        stats, SCORED, "m", 1, monitor.psi_threshold, monitor.null_rate_threshold
    ).collect()
    return sorted(r["feature"] for r in rows if r["drifted"])


@pytest.mark.e2e
def test_unchanged_behaviour_flags_few_features_and_an_injected_change_flags_its_features(
    spark: SparkSession,
) -> None:
    assert len(flagged(spark, 0.04)) <= 3
    changed = flagged(spark, 0.40)
    assert {"thumbs_down_7d", "thumbs_down_14d", "thumbs_down_per_song_28d"} <= set(changed)
    assert all("thumbs_down" in name for name in changed), changed
