"""Two writers of one Delta table at once (two `lakeml score` runs): Delta rejects the later
commit, storage runs that write again, and the table ends as if they had written in turn.

The writers are two threads on the suite's SparkSession, released together by a barrier;
both then write a few files and commit within milliseconds of each other, so one commit is
rejected (ProtocolChangedException on a new table, ConcurrentAppendException after).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from lakeml.core import storage
from lakeml.core.errors import LakemlError

SCHEMA = T.StructType([T.StructField("k", T.LongType()), T.StructField("p", T.LongType())])


def race(writes: list[Callable[[], None]]) -> list[BaseException]:
    """Run the writes in threads started together; the exceptions they raised."""
    barrier, errors = threading.Barrier(len(writes)), []

    def run(write: Callable[[], None]) -> None:
        barrier.wait()
        try:
            write()
        except BaseException as exc:  # noqa: BLE001 - the test looks at every failure
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in writes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def rows(spark: SparkSession, path: str) -> list[tuple[int, int]]:
    return sorted((r["k"], r["p"]) for r in storage.read(spark, path).collect())


def frame(spark: SparkSession, data: list[tuple[int, int]]) -> DataFrame:
    return spark.createDataFrame(data, SCHEMA)


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The retries' pauses, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(storage, "_pause", recorded.append)
    return recorded


def test_two_writers_of_the_same_rows_leave_them_once(
    spark: SparkSession, tmp_path: Path, pauses: list[float]
) -> None:
    data = [(k, k % 2) for k in range(12)]
    df = frame(spark, data)
    path = str(tmp_path / "scores")

    def write() -> None:
        storage.replace_where(df, path, "p IN (0, 1)", partition_by=["p"])

    # A new table (both create it), then the same partitions of the existing table.
    for _ in range(2):
        assert race([write, write]) == []
        assert rows(spark, path) == data
    assert pauses, "no commit was rejected: the writers did not race"
    assert storage.version(spark, path) == 3  # four writes, none lost, none merged


def test_two_writers_of_different_partitions_lose_no_rows(
    spark: SparkSession, tmp_path: Path, pauses: list[float]
) -> None:
    path = str(tmp_path / "scores")
    even, odd = [(0, 0), (2, 0), (4, 0)], [(1, 1), (3, 1)]

    def write(data: list[tuple[int, int]], p: int) -> Callable[[], None]:
        df = frame(spark, data)
        return lambda: storage.replace_where(df, path, f"p = {p}", partition_by=["p"])

    assert race([write(even, 0), write(odd, 1)]) == []
    assert rows(spark, path) == sorted(even + odd)
    assert pauses, "no commit was rejected: the writers did not race"


def test_a_writer_that_keeps_losing_fails_in_one_line_and_commits_nothing(
    spark: SparkSession, tmp_path: Path, pauses: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage, "WRITE_ATTEMPTS", 1)
    path = str(tmp_path / "scores")
    first, second = [(0, 0), (1, 1)], [(10, 0), (11, 1), (12, 0)]

    def write(data: list[tuple[int, int]]) -> Callable[[], None]:
        df = frame(spark, data)
        return lambda: storage.rebuild(df, path, partition_by=["p"])

    errors = race([write(first), write(second)])
    assert len(errors) == 1
    assert isinstance(errors[0], LakemlError)
    message = str(errors[0])
    assert "\n" not in message
    assert f"the Delta table at {path}" in message
    assert "nothing of this write was committed" in message
    # The table holds exactly one writer's rows: the winner's.
    assert rows(spark, path) in (sorted(first), sorted(second))
    assert storage.version(spark, path) == 0
    assert pauses == []
