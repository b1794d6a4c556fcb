"""Versions and row counts read from the Delta log without a JVM agree with Spark's, and
what the log cannot answer exactly is left to Spark."""

from __future__ import annotations

from lakeml.core import delta_log
from lakeml.core.paths import local_path
from lakeml.pipeline import table_summary


def spark_facts(spark, path):
    history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").first()
    return history["version"], spark.read.format("delta").load(path).count()


def test_version_and_rows_match_spark_after_each_kind_of_write(spark, tmp_path):
    path = str(tmp_path / "t")
    df = spark.range(10).selectExpr("id", "id % 3 AS part")
    df.write.format("delta").partitionBy("part").save(path)
    spark.range(5).selectExpr("id + 100 AS id", "CAST(1 AS BIGINT) AS part").write.format(
        "delta"
    ).mode("append").save(path)
    df.where("part = 1").write.format("delta").mode("overwrite").option(
        "replaceWhere", "part = 1"
    ).save(path)
    facts = delta_log.facts(path)
    # By hand: 10 rows, part 1 replaced by its original 3 rows (1, 4, 7) -> 10; versions 0..2.
    assert (facts.version, facts.rows) == (2, 10) == spark_facts(spark, path)
    assert {f["partition.part"] for f in facts.files} == {0, 1, 2}
    assert table_summary(spark, path) == {"path": path, "version": 2, "rows": 10}
    assert delta_log.facts(f"file://{path}").rows == 10


def test_deletion_vectors_are_left_to_spark(spark, tmp_path):
    path = str(tmp_path / "dv")
    spark.range(20).write.format("delta").option("delta.enableDeletionVectors", "true").save(path)
    spark.sql(f"DELETE FROM delta.`{path}` WHERE id < 5")
    # The file still holds 20 records; 5 are deleted in a vector the stats do not subtract.
    assert delta_log.facts(path) is None
    assert table_summary(spark, path)["rows"] == 15 == spark_facts(spark, path)[1]


def test_no_table_and_remote_stores_give_none(tmp_path):
    assert delta_log.facts(str(tmp_path / "absent")) is None
    assert delta_log.facts("s3a://bucket/silver/events") is None
    assert local_path("hdfs://nn:8020/x") is None


def test_history_version_id_and_partitions_agree_with_spark(spark, tmp_path):
    from datetime import date

    from lakeml.core import storage

    path = str(tmp_path / "h")
    rows = spark.createDataFrame(
        [(1, date(2018, 10, 1)), (2, date(2018, 10, 2)), (3, date(2018, 10, 3))], "id INT, d DATE"
    )
    storage.append(rows, path, ["d"], {"k": {"n": 1}})
    storage.append(rows.where("id = 3"), path, ["d"])  # no metadata
    # Empty the first day: its partition value must no longer count.
    storage.replace_where(rows.where("id = 0"), path, "d = DATE'2018-10-01'", ["d"], {"k": 2})
    spark_history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()
    by_spark = {r["version"]: (r["operation"], r["userMetadata"]) for r in spark_history}
    by_log = {c["version"]: (c["operation"], c["userMetadata"]) for c in delta_log.history(path)}
    assert by_log == by_spark and sorted(by_log) == [0, 1, 2]
    assert [c["version"] for c in delta_log.history(path, 2)] in ([2, 1], [1, 2])
    assert delta_log.version(path) == 2 == storage.version(spark, path)
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()
    assert delta_log.table_id(path) == detail["id"] == storage.table_id(spark, path)
    # By hand: days 2 and 3 hold rows (3 twice); day 1 was emptied.
    days = {r["d"] for r in spark.read.format("delta").load(path).select("d").distinct().collect()}
    assert (
        storage.partition_values(spark, path, "d") == days == {date(2018, 10, 2), date(2018, 10, 3)}
    )
    assert delta_log.date_range(path, "d") == (date(2018, 10, 2), date(2018, 10, 3))
    assert delta_log.date_range(path, "d", version=0) == (date(2018, 10, 1), date(2018, 10, 3))
    assert storage.partition_range(path, "d") == (date(2018, 10, 2), date(2018, 10, 3))
    assert storage.commit_metadata(spark, path, "k") == 2
    assert [c["metadata"] for c in storage.recent_commits(spark, path)] == [
        {"k": 2},
        {},
        {"k": {"n": 1}},
    ]
    assert [c["version"] for c in storage.commits_after(spark, path, 0, 2)] == [1, 2]


def test_partitions_of_a_table_the_log_cannot_answer_come_from_spark(spark, tmp_path):
    from lakeml.core import storage

    path = str(tmp_path / "dvp")
    spark.range(20).selectExpr("id", "id % 4 AS p").write.format("delta").partitionBy("p").option(
        "delta.enableDeletionVectors", "true"
    ).save(path)
    spark.sql(f"DELETE FROM delta.`{path}` WHERE id < 8 AND p = 3")
    assert delta_log.facts(path) is None  # deletion vectors: Spark answers
    # By hand: p = 3 holds 3, 7, 11, 15, 19; 3 and 7 deleted, so every p still has rows.
    assert storage.partition_values(spark, path, "p") == {0, 1, 2, 3}
    assert storage.partition_values(spark, str(tmp_path / "none"), "p") is None


def test_file_statistics_cover_the_columns_a_table_declares_and_rows_always(spark, tmp_path):
    from lakeml.core import storage

    rows = spark.createDataFrame(
        [(1, "x", 5.0), (2, "y", 7.5), (3, "z", 6.0)], "a INT, b STRING, c DOUBLE"
    )
    paths = {name: str(tmp_path / name) for name in ("default", "none", "some")}
    storage.append(rows, paths["default"])
    storage.append(rows, paths["none"], stats_columns=[])
    storage.append(rows, paths["some"], stats_columns=["c"])
    # Later writes keep the table's choice (it is a table property, set at creation).
    storage.append(rows, paths["some"], stats_columns=[])

    def minima(path: str) -> dict[str, set]:
        files = delta_log.facts(path).files
        names = {k.removeprefix("min.") for f in files for k in f if k.startswith("min.")}
        return {n: {f.get(f"min.{n}") for f in files} - {None} for n in names}

    assert [delta_log.facts(p).rows for p in paths.values()] == [3, 3, 6]
    # By hand: the minimum of each column over the 3 rows is 1, "x", 5.0.
    assert {n: min(v) for n, v in minima(paths["default"]).items()} == {"a": 1, "b": "x", "c": 5.0}
    assert minima(paths["none"]) == {}
    assert set(minima(paths["some"])) == {"c"}
    assert min(minima(paths["some"])["c"]) == 5.0
