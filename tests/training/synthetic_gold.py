"""Small synthetic gold feature and label tables with a learnable churn signal, for tests
of training (and `bench/train_bench.py`). Shaped like the real ones: keys, long/double
features (some null), string categoricals, one row per user and weekly snapshot."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

START = date(2018, 10, 8)


def snapshot_dates(n: int, start: date = START) -> list[date]:
    return [start + timedelta(days=7 * i) for i in range(n)]


def feature_schema(extra_numeric: int) -> T.StructType:
    return T.StructType(
        [
            T.StructField("user_id", T.StringType()),
            T.StructField("snapshot_date", T.DateType()),
            T.StructField("days_since_last_activity", T.LongType()),
            T.StructField("songs_7d", T.LongType()),
            T.StructField("thumbs_down_28d", T.LongType()),
            T.StructField("is_paid", T.IntegerType()),
            T.StructField("songs_trend", T.DoubleType()),
            *[T.StructField(f"noise_{i:02d}", T.DoubleType()) for i in range(extra_numeric)],
            T.StructField("gender", T.StringType()),
            T.StructField("state", T.StringType()),
            T.StructField("platform", T.StringType()),
        ]
    )


LABEL_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.StringType()),
        T.StructField("snapshot_date", T.DateType()),
        T.StructField("churned", T.IntegerType()),
    ]
)


def synthetic_frames(
    users: int = 80,
    snapshots: int = 6,
    extra_numeric: int = 0,
    seed: int = 0,
    signal: float = 2.5,
    start: date = START,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(features, labels) as pandas; churn depends on inactivity, songs and thumbs down."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in snapshot_dates(snapshots, start):
        inactive = rng.integers(0, 30, users)
        songs = rng.poisson(40, users)
        thumbs = rng.poisson(3, users)
        paid = rng.integers(0, 2, users)
        trend = rng.normal(1.0, 0.3, users)
        z = (
            signal * (inactive - 15) / 9
            - 0.6 * signal * (songs - 40) / 6
            + 0.5 * signal * (thumbs - 3) / 2
            - 1.0
        )
        churned = (rng.random(users) < 1 / (1 + np.exp(-z))).astype("int32")
        frame = pd.DataFrame(
            {
                "user_id": [f"u{i:04d}" for i in range(users)],
                "snapshot_date": d,
                "days_since_last_activity": inactive.astype("int64"),
                "songs_7d": songs.astype("int64"),
                "thumbs_down_28d": thumbs.astype("int64"),
                "is_paid": paid.astype("int32"),
                # Some missing values, as in real feature tables.
                "songs_trend": np.where(rng.random(users) < 0.1, np.nan, trend),
                **{f"noise_{i:02d}": rng.normal(0, 1, users) for i in range(extra_numeric)},
                "gender": rng.choice(np.array(["M", "F", None], dtype=object), users),
                "state": rng.choice(np.array(["CA", "NY", "TX", "WA"], dtype=object), users),
                "platform": rng.choice(np.array(["mac", "windows", "iphone"], dtype=object), users),
                "churned": churned,
            }
        )
        rows.append(frame)
    both = pd.concat(rows, ignore_index=True)
    labels = both[["user_id", "snapshot_date", "churned"]]
    return both.drop(columns=["churned"]), labels


def to_spark(
    spark: SparkSession, features: pd.DataFrame, labels: pd.DataFrame, extra_numeric: int
) -> tuple[DataFrame, DataFrame]:
    f = features.astype(object).where(features.notna(), None)
    fdf = spark.createDataFrame(f.values.tolist(), feature_schema(extra_numeric))
    ldf = spark.createDataFrame(labels.astype(object).values.tolist(), LABEL_SCHEMA)
    return fdf, ldf


def write_gold(
    spark: SparkSession,
    features_path: str,
    labels_path: str,
    users: int = 80,
    snapshots: int = 6,
    extra_numeric: int = 0,
    seed: int = 0,
    shuffle_labels: bool = False,
) -> tuple[DataFrame, DataFrame]:
    """Write both tables as Delta (partitioned by snapshot_date, like gold).

    `shuffle_labels`: permute the labels over all rows, so no feature can predict them;
    a model that still scores well on them has the target leaking into its inputs.
    """
    features, labels = synthetic_frames(users, snapshots, extra_numeric, seed)
    if shuffle_labels:
        rng = np.random.default_rng(seed + 1)
        labels = labels.assign(churned=rng.permutation(labels["churned"].to_numpy()))
    fdf, ldf = to_spark(spark, features, labels, extra_numeric)
    fdf.write.format("delta").mode("overwrite").partitionBy("snapshot_date").save(features_path)
    ldf.write.format("delta").mode("overwrite").partitionBy("snapshot_date").save(labels_path)
    return fdf, ldf
