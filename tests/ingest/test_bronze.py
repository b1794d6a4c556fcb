from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from sparkify import EVENTS

from lakeml.core import storage
from lakeml.core.errors import LakemlError
from lakeml.ingest import bronze


def write_lines(path: Path, *lines: str) -> None:
    path.write_text("".join(f"{x}\n" for x in lines))


def bronze_lines(spark: SparkSession, path: str) -> list[tuple[str, str]]:
    """(file name, raw line) of every bronze row, sorted."""
    rows = storage.read(spark, path).select(
        F.element_at(F.split("source_file", "/"), -1).alias("file"), "value"
    )
    return sorted((r["file"], r["value"]) for r in rows.collect())


def test_every_line_is_ingested_once_and_new_files_are_picked_up(
    spark: SparkSession, tmp_path: Path
) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    table = str(tmp_path / "bronze")
    write_lines(raw / "2018-10-01-events.json", '{"ts": 1}', "not json at all", "", '{"ts": 2}')
    write_lines(raw / "2018-10-02-events.json", '{"ts": 3}')
    # Spark skips hidden and underscore files: neither is an input.
    write_lines(raw / "_SUCCESS", "marker")
    write_lines(raw / ".2018-10-03-events.json.crc", "checksum")

    first = bronze.ingest(spark, str(raw), table, EVENTS)

    # 4 lines (a malformed and a blank one included) + 1 line, from 2 files, in one commit.
    assert first == bronze.BronzeResult(rows=5, files=2)
    assert storage.version(spark, table) == 0
    assert bronze_lines(spark, table) == [
        ("2018-10-01-events.json", ""),
        ("2018-10-01-events.json", "not json at all"),
        ("2018-10-01-events.json", '{"ts": 1}'),
        ("2018-10-01-events.json", '{"ts": 2}'),
        ("2018-10-02-events.json", '{"ts": 3}'),
    ]
    ingest_times = storage.read(spark, table).select("ingested_at").distinct().collect()
    assert len(ingest_times) == 1 and ingest_times[0]["ingested_at"] is not None
    version = storage.version(spark, table)

    # Nothing new: no line read, no commit.
    assert bronze.ingest(spark, str(raw), table, EVENTS) == bronze.BronzeResult(rows=0, files=0)
    assert storage.version(spark, table) == version

    write_lines(raw / "2018-10-03-events.json", '{"ts": 4}', '{"ts": 5}')

    assert bronze.ingest(spark, str(raw), table, EVENTS) == bronze.BronzeResult(rows=2, files=1)
    assert len(bronze_lines(spark, table)) == 7  # 5 + 2, nothing ingested twice
    assert storage.version(spark, table) == version + 1
    times = storage.read(spark, table).groupBy("ingested_at").count().orderBy("ingested_at")
    assert [r["count"] for r in times.collect()] == [5, 2]  # one time per run, in run order


def test_bronze_rows_are_the_raw_line_its_file_and_the_ingest_time(
    spark: SparkSession, tmp_path: Path
) -> None:
    write_lines(tmp_path / "a.json", '{"ts": 1}')

    rows = bronze.to_bronze(spark.read.text(str(tmp_path / "a.json")))

    # _metadata.file_path is a Hadoop URI: "file:" and the absolute path.
    expected = spark.createDataFrame(
        [('{"ts": 1}', f"file:{tmp_path}/a.json")], "value string, source_file string"
    )
    assert rows.columns == ["value", "source_file", "ingested_at"]
    assert dict(rows.dtypes)["ingested_at"] == "timestamp"
    assert_df_equality(rows.drop("ingested_at"), expected, ignore_nullable=True)


def test_missing_input_folder_is_a_clear_error(spark: SparkSession, tmp_path: Path) -> None:
    with pytest.raises(LakemlError, match="does not exist or cannot be read"):
        bronze.ingest(spark, str(tmp_path / "nope"), str(tmp_path / "b"), EVENTS)


def test_empty_folder_on_first_run_is_a_clear_error(spark: SparkSession, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    write_lines(raw / "_SUCCESS", "not an input")

    with pytest.raises(LakemlError, match="no raw event files in"):
        bronze.ingest(spark, str(raw), str(tmp_path / "b"), EVENTS)
    assert not storage.exists(spark, str(tmp_path / "b"))


def test_empty_folder_is_fine_once_bronze_has_data(spark: SparkSession, tmp_path: Path) -> None:
    first, empty = tmp_path / "first", tmp_path / "empty"
    first.mkdir()
    empty.mkdir()
    write_lines(first / "2018-10-01-events.json", '{"ts": 1}')
    table = str(tmp_path / "bronze")
    bronze.ingest(spark, str(first), table, EVENTS)

    assert bronze.ingest(spark, str(empty), table, EVENTS) == bronze.BronzeResult(rows=0, files=0)


def test_file_names_with_spaces_and_brackets_are_ingested_once(
    spark: SparkSession, tmp_path: Path
) -> None:
    # The listing and _metadata.file_path both URL-encode such names; they must still match.
    raw = tmp_path / "raw events"
    raw.mkdir()
    write_lines(raw / "day 1 [copy].json", '{"ts": 1}', '{"ts": 2}')
    table = str(tmp_path / "bronze")

    assert bronze.ingest(spark, str(raw), table, EVENTS) == bronze.BronzeResult(rows=2, files=1)
    assert bronze.ingest(spark, str(raw), table, EVENTS) == bronze.BronzeResult(rows=0, files=0)
    assert bronze_lines(spark, table) == [
        ("day%201%20%5Bcopy%5D.json", '{"ts": 1}'),
        ("day%201%20%5Bcopy%5D.json", '{"ts": 2}'),
    ]


def test_listed_uris_take_the_form_bronze_stores() -> None:
    cases = [
        ("file:///data/raw/a.json", "file:/data/raw/a.json"),
        ("file:/data/raw/a.json", "file:/data/raw/a.json"),
        ("hdfs://nn:8020/raw/a.json", "hdfs://nn:8020/raw/a.json"),
        ("s3a://bucket/raw/a%20b.json", "s3a://bucket/raw/a%20b.json"),
    ]
    assert [bronze.file_key(uri) for uri, _ in cases] == [key for _, key in cases]


def test_ingest_time_is_later_than_every_earlier_ingest_even_if_the_clock_is_behind(
    spark: SparkSession, tmp_path: Path
) -> None:
    write_lines(tmp_path / "a.json", '{"ts": 1}')
    lines = spark.read.text(str(tmp_path / "a.json"))
    # An earlier run stamped its rows a day in the future (the clock has since stepped back).
    future = datetime.now(timezone.utc) + timedelta(days=1)
    future_micros = int(future.timestamp()) * 1_000_000

    rows = bronze.to_bronze(lines, after_micros=future_micros).select(
        F.unix_micros("ingested_at").alias("micros")
    )

    assert rows.first()["micros"] == future_micros + 1
