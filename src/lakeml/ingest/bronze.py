"""Bronze: every raw event line exactly as it arrived, with where and when it came from.

Raw files are read by Spark's streaming file source with `trigger(availableNow=True)` and
written by the Delta sink. The checkpoint remembers which files were ingested and the
Delta sink commits each micro-batch exactly once, so a rerun picks up only new files and,
when there are none, writes no new table version. Nothing is parsed here: malformed lines
are kept and judged by the silver stage.
"""

from __future__ import annotations

from datetime import datetime, timezone

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeml.core.errors import LakemlError

BRONZE_COLUMNS = ("value", "source_file", "ingested_at")


def to_bronze(raw_lines: DataFrame) -> DataFrame:
    """Text-source lines -> bronze rows: the raw line, its file and the ingestion time.

    `raw_lines` must come from a file source (it needs the hidden `_metadata` column).
    In a micro-batch `current_timestamp()` is the batch time, shared by all its rows.
    """
    return raw_lines.select(
        F.col("value").cast("string").alias("value"),
        F.col("_metadata.file_path").alias("source_file"),
        F.current_timestamp().alias("ingested_at"),
    )


def _visible_files(spark: SparkSession, input_path: str) -> list[str]:
    """Files Spark would read under `input_path` (hidden and `_` files skipped, as Spark does)."""
    try:
        # A batch reader lists the folder with the same rules as the streaming source and
        # reads no data: inputFiles() only consults the file index.
        return spark.read.text(input_path).inputFiles()
    except (PySparkException, Py4JJavaError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LakemlError(
            f"raw event input {input_path!r} does not exist or cannot be read ({reason}); "
            "point source.path (or --input) at the folder of YYYY-MM-DD-events.json files"
        ) from None


def _has_rows(spark: SparkSession, bronze_path: str) -> bool:
    from lakeml.core import storage

    return storage.exists(spark, bronze_path) and not storage.read(spark, bronze_path).isEmpty()


def ingest(
    spark: SparkSession, input_path: str, bronze_path: str, checkpoint_path: str
) -> dict[str, int]:
    """Append raw lines of files not yet ingested to the bronze Delta table.

    Returns `{"rows": lines appended this run, "files": files ingested this run}`.
    Raises `LakemlError` if the input folder is missing or unreadable, or holds no files
    while bronze is still empty.
    """
    if not _visible_files(spark, input_path) and not _has_rows(spark, bronze_path):
        raise LakemlError(
            f"no raw event files in {input_path!r} and bronze ({bronze_path!r}) is empty; "
            "generate data first (`lakeml generate`) or point source.path at your event logs"
        )
    # Rows this run carry a batch timestamp at or after this instant (same clock: the
    # driver), which lets the count below skip every older bronze file by its statistics.
    now = datetime.now(timezone.utc)
    started = now.replace(microsecond=now.microsecond // 1000 * 1000)
    query = (
        spark.readStream.format("text")
        .load(input_path)
        .transform(to_bronze)
        .writeStream.format("delta")
        .outputMode("append")
        .option("checkpointLocation", checkpoint_path)
        .trigger(availableNow=True)
        .start(bronze_path)
    )
    query.awaitTermination()
    if not any(p.numInputRows for p in query.recentProgress):
        return {"rows": 0, "files": 0}
    # The streaming progress reports rows but not files; Delta data skipping on
    # `ingested_at` makes this read only the files written by this run.
    counts = (
        spark.read.format("delta")
        .load(bronze_path)
        .where(F.col("ingested_at") >= F.lit(started))
        .agg(F.count(F.lit(1)).alias("rows"), F.count_distinct("source_file").alias("files"))
        .first()
    )
    return {"rows": int(counts["rows"]), "files": int(counts["files"])}
