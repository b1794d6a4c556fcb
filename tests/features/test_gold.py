from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from sparkify import SILVER, features_config, update

from lakeml.core import storage
from lakeml.core.config import FeaturesConfig, SnapshotConfig
from lakeml.core.errors import LakemlError
from lakeml.features.gold import GoldPaths, Plan, plan_refresh
from lakeml.ingest.silver import MARKER_KEY, NEW_SINCE

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


def ev(user: str, day: str, page: str = "NextSong", session: int = 1) -> tuple[Any, ...]:
    ts = datetime.fromisoformat(f"{day} 12:00:00").replace(tzinfo=timezone.utc)
    reg = datetime(2018, 9, 1, tzinfo=timezone.utc)
    artist, length = ("A", 200.0) if page == "NextSong" else (None, None)
    return (user, session, 0, ts, ts.date(), page, "free", artist, length, "F", "CA", "Mac", reg)


def append_silver(spark: SparkSession, path: str, rows: list[tuple[Any, ...]]) -> None:
    """Append rows as silver's batch commit does, with the earliest event day it adds."""
    first = min((row[4] for row in rows), default=None)
    marker = {MARKER_KEY: {NEW_SINCE: first.isoformat() if first else None}}
    storage.append(spark.createDataFrame(rows, SILVER), path, metadata=marker)


def config(tmp_path: Path) -> FeaturesConfig:
    return features_config(
        windows=[7],
        label_horizon_days=2,
        snapshots=SnapshotConfig(every_days=1, min_history_days=7),
    )


def ten_days() -> list[tuple[Any, ...]]:
    """a: a song every day 10-01..10-10; b: visits 10-01, 10-05; c: cancels on 10-09."""
    a = [ev("a", f"2018-10-{day:02d}", session=day) for day in range(1, 11)]
    b = [ev("b", "2018-10-01", "Home", 20), ev("b", "2018-10-05", "Home", 21)]
    c = [ev("c", "2018-10-03", session=30), ev("c", "2018-10-09", CANCEL, 31)]
    return a + b + c


def paths(tmp_path: Path) -> tuple[str, str, str]:
    return str(tmp_path / "silver"), str(tmp_path / "features"), str(tmp_path / "labels")


def test_update_is_idempotent_a_second_call_writes_nothing(
    spark: SparkSession, tmp_path: Path
) -> None:
    cfg = config(tmp_path)
    silver, features, labels = paths(tmp_path)
    append_silver(spark, silver, ten_days())

    first = update(spark, cfg, GoldPaths(silver, str(tmp_path / "q"), features, labels))
    # D = 10-10; series 10-11, 10-10, 10-09, 10-08 (>= 10-01 + 7 days).
    # Populations: 10-08 a b c, 10-09 a b c (c cancels on S), 10-10 a b, 10-11 a b -> 10 rows.
    # Labelled (S + 1 <= 10-10): 10-08 and 10-09, 3 users each -> 6 rows.
    assert asdict(first) == {
        "snapshots_computed": ["2018-10-08", "2018-10-09", "2018-10-10", "2018-10-11"],
        "feature_rows": 10,
        "label_rows": 6,
        "snapshots_total": 4,
        "labelled_snapshots": 2,
    }
    # c cancels on 10-09: inside the horizon [10-08, 10-09] and [10-09, 10-10].
    expected_labels = spark.createDataFrame(
        [(u, d(s), int(u == "c")) for s in ("2018-10-08", "2018-10-09") for u in "abc"], LABELS
    )
    assert_df_equality(
        storage.read(spark, labels), expected_labels, ignore_nullable=True, ignore_row_order=True
    )
    versions = (storage.version(spark, features), storage.version(spark, labels))

    again = update(spark, cfg, GoldPaths(silver, str(tmp_path / "q"), features, labels))
    assert asdict(again) == {
        "snapshots_computed": [],
        "feature_rows": 0,
        "label_rows": 0,
        "snapshots_total": 4,
        "labelled_snapshots": 2,
    }
    assert (storage.version(spark, features), storage.version(spark, labels)) == versions


def replaced_dates(spark: SparkSession, path: str) -> str:
    """The replaceWhere predicate Delta recorded for the table's latest commit."""
    row = DeltaTable.forPath(spark, path).history(1).select("operationParameters").first()
    return row["operationParameters"]["predicate"]


def test_appending_a_day_rewrites_only_new_and_affected_snapshots(
    spark: SparkSession, tmp_path: Path
) -> None:
    cfg = config(tmp_path)
    silver, features, labels = paths(tmp_path)
    append_silver(spark, silver, ten_days())
    update(spark, cfg, GoldPaths(silver, str(tmp_path / "q"), features, labels))
    before = storage.version(spark, features), storage.version(spark, labels)

    # Day 10-11 arrives: a listens, b cancels.
    append_silver(spark, silver, [ev("a", "2018-10-11", session=11), ev("b", "2018-10-11", CANCEL)])
    result = update(spark, cfg, GoldPaths(silver, str(tmp_path / "q"), features, labels))

    # D = 10-11. Features change only for S > 10-11: the new 10-12 (a only; b cancelled
    # 10-11). Labels change for S > 10-11 - 2 days = 10-09 among the labelled (S + 1 <=
    # 10-11): 10-10, which is also newly observed; b cancels in its horizon [10-10, 10-11].
    assert asdict(result) == {
        "snapshots_computed": ["2018-10-10", "2018-10-12"],
        "feature_rows": 1,
        "label_rows": 2,
        "snapshots_total": 5,
        "labelled_snapshots": 3,
    }
    assert "2018-10-12" in replaced_dates(spark, features)
    assert all(f"2018-10-{day}" not in replaced_dates(spark, features) for day in range(8, 12))
    assert "2018-10-10" in replaced_dates(spark, labels)
    assert all(f"2018-10-{day}" not in replaced_dates(spark, labels) for day in (8, 9, 11, 12))

    old = F.col("snapshot_date") < F.lit(d("2018-10-12"))
    assert_df_equality(
        storage.read(spark, features).where(old),
        storage.read(spark, features, version=before[0]),
        ignore_row_order=True,
    )
    new_labels = storage.read(spark, labels).where(F.col("snapshot_date") == F.lit(d("2018-10-10")))
    expected = spark.createDataFrame([("a", d("2018-10-10"), 0), ("b", d("2018-10-10"), 1)], LABELS)
    assert_df_equality(new_labels, expected, ignore_nullable=True, ignore_row_order=True)
    assert_df_equality(
        storage.read(spark, labels).where(F.col("snapshot_date") < F.lit(d("2018-10-10"))),
        storage.read(spark, labels, version=before[1]),
        ignore_row_order=True,
    )


def test_full_refresh_recomputes_every_snapshot(spark: SparkSession, tmp_path: Path) -> None:
    cfg = config(tmp_path)
    silver, features, labels = paths(tmp_path)
    append_silver(spark, silver, ten_days())
    update(spark, cfg, GoldPaths(silver, str(tmp_path / "q"), features, labels))
    result = update(
        spark, cfg, GoldPaths(silver, str(tmp_path / "q"), features, labels), full_refresh=True
    )
    # same 4 snapshots, 10 feature and 6 label rows as the first build
    assert result.snapshots_computed == ["2018-10-08", "2018-10-09", "2018-10-10", "2018-10-11"]
    assert (result.feature_rows, result.label_rows) == (10, 6)
    assert storage.count(spark, features) == 10


def test_silver_without_rows_is_a_clear_error(spark: SparkSession, tmp_path: Path) -> None:
    silver, features, labels = paths(tmp_path)
    append_silver(spark, silver, [])
    with pytest.raises(LakemlError, match="no valid events in silver.*quarantine"):
        update(spark, config(tmp_path), GoldPaths(silver, str(tmp_path / "q"), features, labels))


def test_plan_rebuilds_missing_tables_and_refreshes_what_new_events_can_change() -> None:
    series = [d("2018-10-08"), d("2018-10-15"), d("2018-10-22")]
    labelled = series[:2]
    # no tables: everything
    assert plan_refresh(series, labelled, None, None, None, None, 7) == Plan(series, labelled)
    stored_f, stored_l = set(series[:2]), {series[0]}
    # nothing new: only the snapshot not yet stored (features) / not yet labelled (labels)
    assert plan_refresh(series, labelled, stored_f, stored_l, None, None, 7) == Plan(
        [d("2018-10-22")], [d("2018-10-15")]
    )
    # a late event on 10-14 changes features for S > 10-14 and labels for S > 10-07
    late = d("2018-10-14")
    assert plan_refresh(series, labelled, set(series), set(labelled), late, late, 7) == Plan(
        [d("2018-10-15"), d("2018-10-22")], [d("2018-10-08"), d("2018-10-15")]
    )
    # each table from its own day: labels last written before an event on 10-09 arrived
    # (S > 10-02), features after it (nothing new for them)
    assert plan_refresh(series, labelled, set(series), set(labelled), None, d("2018-10-09"), 7) == (
        Plan([], [d("2018-10-08"), d("2018-10-15")])
    )


def test_a_changed_horizon_stops_until_a_full_refresh_rebuilds_the_labels(
    spark: SparkSession, tmp_path: Path
) -> None:
    silver, features, labels = paths(tmp_path)
    gold_paths = GoldPaths(silver, str(tmp_path / "q"), features, labels)
    append_silver(spark, silver, ten_days())
    update(spark, config(tmp_path), gold_paths)
    assert storage.count(spark, labels) == 6  # 2-day labels of 10-08 and 10-09
    versions = storage.version(spark, features), storage.version(spark, labels)
    longer = config(tmp_path).model_copy(update={"label_horizon_days": 200})

    # Only the labels depend on the horizon; nothing is written.
    with pytest.raises(
        LakemlError,
        match=r"labels: features\.label_horizon_days \(2 -> 200\)\).*--full-refresh",
    ) as raised:
        update(spark, longer, gold_paths)
    assert "features.windows" not in str(raised.value)
    assert "\n" not in str(raised.value)
    assert (storage.version(spark, features), storage.version(spark, labels)) == versions

    result = update(spark, longer, gold_paths, full_refresh=True)

    # D = 10-10: no snapshot has 200 days observed after it, so the rebuilt labels table is
    # empty, with the labels' columns; the features are the same 10 rows as before.
    assert (result.label_rows, result.labelled_snapshots) == (0, 0)
    assert_df_equality(
        storage.read(spark, labels), spark.createDataFrame([], LABELS), ignore_nullable=True
    )
    assert_df_equality(
        storage.read(spark, features),
        storage.read(spark, features, version=versions[0]),
        ignore_row_order=True,
    )
    # The new values are recorded: the next run has nothing to do and no complaint.
    again = update(spark, longer, gold_paths)
    assert again.snapshots_computed == []
