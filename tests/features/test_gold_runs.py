"""Gold over runs of raw files: day-by-day arrival and crashes between writes change nothing.

Each test feeds tiny eventsim lines through bronze, silver and gold as `lakeml features`
does, and compares the gold tables row for row with one clean run over every file at once
(whose rows are checked by hand first).
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from chispa import assert_df_equality
from fault_harness import crash_on_write
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T
from sparkify import SOURCE, features_config, update

from lakeml.core import storage
from lakeml.core.config import SnapshotConfig
from lakeml.features import gold
from lakeml.ingest import bronze, silver

CANCEL = "Cancellation Confirmation"
# 2-day windows and horizon; a snapshot every 2 days on the grid of the default origin
# 1970-01-05: 2018-10-02 is 17806 - 4 = 2 * 8901 days after it, so the even days of October.
CONFIG = features_config(
    windows=[2], label_horizon_days=2, snapshots=SnapshotConfig(every_days=2, min_history_days=2)
)
DAYS = [f"2018-10-0{day}" for day in range(1, 6)]


def event(user: str, day: str, hour: int, page: str = "NextSong") -> str:
    ts = datetime.fromisoformat(f"{day}T{hour:02d}:00:00").replace(tzinfo=timezone.utc)
    song = {"artist": "A", "song": "S", "length": 200.0} if page == "NextSong" else {}
    fields = {
        "ts": int(ts.timestamp() * 1000),
        "userId": user,
        "sessionId": int(day[-2:]) * 10 + hour,
        "itemInSession": 0,
        "page": page,
        "auth": "Logged In",
        "level": "free",
        "gender": "F",
        "location": "Bakersfield, CA",
        "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_4)",
        "registration": 1535760000000,  # 2018-09-01
        "method": "PUT",
        "status": 200,
        **song,
    }
    return json.dumps(fields)


def daily_file(day: str) -> list[str]:
    """a: a song every day; b: songs on days 1, 2 and 5; c: songs on days 1-3, cancels on 4;
    d: first seen on day 3, a song on 5."""
    n = int(day[-1])
    lines = [event("a", day, 9)]
    lines += [event("b", day, 10)] if n in (1, 2, 5) else []
    lines += [event("c", day, 11)] if n <= 3 else []
    lines += [event("c", day, 11, CANCEL)] if n == 4 else []
    lines += [event("d", day, 12)] if n in (3, 5) else []
    return lines


# A late file, arriving after day 5: e is first seen on day 4, and d cancels on day 5.
LATE = {
    "2018-10-05-late-events.json": [
        event("e", "2018-10-04", 14),
        event("d", "2018-10-05", 15, CANCEL),
    ]
}
FILES = {f"{day}-events.json": daily_file(day) for day in DAYS} | LATE


class Lake:
    """A raw folder and the bronze, silver and gold tables of one test."""

    def __init__(self, spark: SparkSession, root: Path) -> None:
        self.spark, self.raw = spark, root / "raw"
        self.raw.mkdir(parents=True)
        names = ("bronze", "silver", "quarantine", "features", "labels")
        self.paths = {name: str(root / name) for name in names}

    def add(self, *names: str) -> None:
        for name in names:
            (self.raw / name).write_text("".join(f"{x}\n" for x in FILES[name]))

    def ingest(self) -> None:
        """Bronze and silver, as `lakeml features` runs them before gold."""
        p = self.paths
        bronze.ingest(self.spark, str(self.raw), p["bronze"], SOURCE.events)
        silver.update(self.spark, p["bronze"], p["silver"], p["quarantine"], SOURCE)

    def gold(self) -> gold.GoldResult:
        p = self.paths
        paths = gold.GoldPaths(p["silver"], p["quarantine"], p["features"], p["labels"])
        return update(self.spark, CONFIG, paths)

    def run(self) -> gold.GoldResult:
        self.ingest()
        return self.gold()

    def table(self, name: str) -> DataFrame:
        return storage.read(self.spark, self.paths[name])


def d(text: str) -> date:
    return date.fromisoformat(text)


@pytest.fixture(scope="module")
def clean(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """One run over every file at once: the oracle."""
    lake = Lake(spark, tmp_path_factory.mktemp("clean"))
    lake.add(*FILES)
    lake.run()
    return lake


def assert_same_gold(lake: Lake, clean: Lake) -> None:
    for name in ("features", "labels"):
        assert_df_equality(lake.table(name), clean.table(name), ignore_row_order=True)


def test_the_clean_run_has_the_hand_computed_snapshots_and_labels(
    spark: SparkSession, clean: Lake
) -> None:
    # Days 10-01..10-05: even days from 10-01 + 2 = 10-03 to D + 1 = 10-06: 10-04 and 10-06.
    # Population at S: seen before S and not cancelled before S (c 10-04, d 10-05).
    keys = [
        (r[0], r[1]) for r in clean.table("features").select("user_id", "snapshot_date").collect()
    ]
    assert sorted(keys) == sorted(
        [
            ("a", d("2018-10-04")),
            ("b", d("2018-10-04")),
            ("c", d("2018-10-04")),
            ("d", d("2018-10-04")),
        ]
        + [("a", d("2018-10-06")), ("b", d("2018-10-06")), ("e", d("2018-10-06"))]
    )
    # Labelled when S + 1 <= 10-05: 10-04 only; c cancels on 10-04 and d on 10-05, in [S, S + 1].
    labels = T.StructType(
        [
            T.StructField("user_id", T.StringType()),
            T.StructField("snapshot_date", T.DateType()),
            T.StructField("churned", T.IntegerType()),
        ]
    )
    expected = spark.createDataFrame(
        [
            ("a", d("2018-10-04"), 0),
            ("b", d("2018-10-04"), 0),
            ("c", d("2018-10-04"), 1),
            ("d", d("2018-10-04"), 1),
        ],
        labels,
    )
    assert_df_equality(clean.table("labels"), expected, ignore_row_order=True, ignore_nullable=True)


def test_one_day_per_run_builds_the_same_tables_as_one_run_on_all_days(
    spark: SparkSession, clean: Lake, tmp_path: Path
) -> None:
    lake = Lake(spark, tmp_path)
    for day in DAYS:
        lake.add(f"{day}-events.json")
        lake.run()
    lake.add(*LATE)  # a late delivery of days 4 and 5
    lake.run()

    assert_same_gold(lake, clean)


# The same crash with a real killed process is in make fault-test (tests/faults).
@pytest.mark.crash
def test_a_crash_after_silver_committed_is_healed_by_the_next_gold_run(
    spark: SparkSession, clean: Lake, tmp_path: Path
) -> None:
    lake = Lake(spark, tmp_path)
    lake.add(*[f"{day}-events.json" for day in DAYS])
    lake.run()
    lake.add(*LATE)
    lake.ingest()  # the process dies here: silver has the late days, gold does not

    # The rerun finds nothing new in bronze or silver; gold alone must catch up.
    result = lake.gold()

    # Events from 10-04 on change features for S > 10-04 and labels for S > 10-02.
    assert result.snapshots_computed == ["2018-10-04", "2018-10-06"]
    assert_same_gold(lake, clean)


# The same crash with a real killed process is in make fault-test (tests/faults).
@pytest.mark.crash
def test_a_crash_between_the_features_and_labels_writes_is_healed(
    spark: SparkSession, clean: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = Lake(spark, tmp_path)
    lake.add(*[f"{day}-events.json" for day in DAYS])
    lake.run()
    lake.add(*LATE)
    crash_on_write(monkeypatch, "replace_where", lake.paths["labels"])
    with pytest.raises(RuntimeError, match="the driver died"):
        lake.run()
    monkeypatch.undo()

    result = lake.run()

    # Features were written before the crash; the labels of 10-04 are still to do.
    assert result.snapshots_computed == ["2018-10-04"]
    assert_same_gold(lake, clean)
