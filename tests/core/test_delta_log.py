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
