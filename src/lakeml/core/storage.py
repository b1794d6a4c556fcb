"""Delta table I/O at the edges of each stage: read, version, write, merge."""

from __future__ import annotations

from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from lakeml.core.errors import LakemlError


def exists(spark: SparkSession, path: str) -> bool:
    return DeltaTable.isDeltaTable(spark, path)


def read(spark: SparkSession, path: str, version: int | None = None) -> DataFrame:
    """Read a Delta table (optionally at a version), with a clear error if it is not there."""
    if not exists(spark, path):
        raise LakemlError(f"no Delta table at {path!r}; run the step that writes it first")
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(path)


def version(spark: SparkSession, path: str) -> int | None:
    """The table's current Delta version, or None if there is no table."""
    if not exists(spark, path):
        return None
    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    return int(row["version"]) if row else None


def last_operation_metrics(spark: SparkSession, path: str) -> dict[str, Any]:
    """Operation metrics Delta recorded for the table's latest commit (e.g. numOutputRows)."""
    row = DeltaTable.forPath(spark, path).history(1).select("operationMetrics").first()
    return dict(row["operationMetrics"] or {}) if row else {}


def count(spark: SparkSession, path: str) -> int:
    return read(spark, path).count() if exists(spark, path) else 0


def replace_where(
    df: DataFrame, path: str, condition: str, partition_by: list[str] | None = None
) -> None:
    """Atomically replace the rows matching `condition` with `df` (create the table if new)."""
    writer = df.write.format("delta").mode("overwrite").option("replaceWhere", condition)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(path)


def append_once(
    df: DataFrame, path: str, app_id: str, version: int, partition_by: list[str] | None = None
) -> None:
    """Append once per (app_id, version) with Delta's idempotent writes: a replayed
    micro-batch (same app id and batch id) is skipped by Delta instead of appended twice."""
    writer = (
        df.write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", version)
    )
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(path)


def merge_insert_new(
    spark: SparkSession,
    df: DataFrame,
    path: str,
    keys: list[str],
    partition_by: list[str] | None = None,
) -> int:
    """Insert rows of `df` whose keys are not yet in the table; return how many were inserted."""
    if not exists(spark, path):
        writer = df.write.format("delta").mode("overwrite")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.save(path)
        return read(spark, path).count()
    condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(df.alias("s"), condition)
        .whenNotMatchedInsertAll()
        .execute()
    )
    return int(last_operation_metrics(spark, path).get("numTargetRowsInserted", 0))
