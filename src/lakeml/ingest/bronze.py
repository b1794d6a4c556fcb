"""Bronze: every raw event line exactly as it arrived, with where and when it came from.

A run lists the input folder, subtracts the files bronze already holds (its `source_file`
column) and appends the lines of the new files in one batch commit. The list of ingested
files lives in the table itself, so it commits atomically with the rows: a crash cannot
record a file without its lines, and a rerun picks up exactly the files not yet in
bronze. A run with no new file reads no line and commits nothing. Nothing is parsed here:
malformed lines are kept and judged by the silver stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from lakeml.core import storage
from lakeml.core.errors import LakemlError
from lakeml.core.event_spec import EventSourceSpec

BRONZE_COLUMNS = ("value", "source_file", "ingested_at")


@dataclass(frozen=True)
class BronzeResult:
    rows: int  # raw lines appended this run
    files: int  # files ingested this run


def to_bronze(raw_lines: DataFrame, after_micros: int | None = None) -> DataFrame:
    """Text-source lines -> bronze rows: the raw line, its file and the ingestion time.

    `raw_lines` must come from a file source (it needs the hidden `_metadata` column).
    `current_timestamp()` is fixed per query, so one write's rows share one `ingested_at`.
    With `after_micros` (the latest `ingested_at` already in bronze, as epoch microseconds)
    the time is at least one microsecond later, so each write's time is later than every
    earlier one even if the clock stepped back: silver relies on that order.
    """
    now = F.current_timestamp()
    if after_micros is not None:
        now = F.greatest(now, F.timestamp_micros(F.lit(after_micros + 1)))
    return raw_lines.select(
        F.col("value").cast("string").alias("value"),
        F.col("_metadata.file_path").alias("source_file"),
        now.alias("ingested_at"),
    )


def file_key(uri: str) -> str:
    """A listed file's URI in the form `_metadata.file_path` gives it (what bronze stores).

    Both are URL-encoded URIs, but a local file lists as `file:///x` and reads as `file:/x`.
    """
    return re.sub(r"^file:///", "file:/", uri)


def _read_folder(spark: SparkSession, input_path: str, spec: EventSourceSpec) -> DataFrame:
    """The folder's records as text lines (`value`), with the hidden `_metadata` column.

    JSON and CSV files are read as lines; parquet and delta rows become one JSON object
    each, so silver parses every format the same way.
    """
    options = {"pathGlobFilter": spec.pattern} if spec.pattern else {}
    try:
        if spec.format in ("json", "csv"):
            return spark.read.options(**options).text(input_path)
        rows = spark.read.options(**options).format(spec.format).load(input_path)
        return rows.select(
            F.to_json(F.struct(*[F.col(c) for c in rows.columns])).alias("value"),
            F.col("_metadata"),
        )
    except (PySparkException, Py4JJavaError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LakemlError(
            f"raw event input {input_path!r} does not exist or cannot be read ({reason}); "
            "point source.path (or --input) at the folder of YYYY-MM-DD-events.json files"
        ) from None


def _ingested(spark: SparkSession, bronze_path: str) -> tuple[set[str], int | None]:
    """The files bronze holds and its latest `ingested_at` (epoch microseconds), in one pass."""
    if not storage.exists(spark, bronze_path):
        return set(), None
    per_file = (
        storage.read(spark, bronze_path)
        .groupBy("source_file")
        .agg(F.max(F.unix_micros("ingested_at")).alias("last"))
        .collect()
    )
    last = max((r["last"] for r in per_file), default=None)
    return {r["source_file"] for r in per_file}, last


def ingest(
    spark: SparkSession, input_path: str, bronze_path: str, spec: EventSourceSpec
) -> BronzeResult:
    """Append the raw lines of files not yet in bronze to the bronze Delta table.

    Raises `LakemlError` if the input folder is missing or unreadable, or holds no files
    while bronze is still empty. Assumes one bronze writer at a time, as the pipeline runs it.
    """
    folder = _read_folder(spark, input_path, spec)
    # inputFiles() lists the folder with Spark's rules (hidden and `_` files skipped) and
    # reads nothing; the DataFrame keeps that listing, so the read below sees the same files.
    visible = {file_key(f) for f in folder.inputFiles()}
    done, last_ingested = _ingested(spark, bronze_path)
    if not visible and not done:
        raise LakemlError(
            f"no raw event files in {input_path!r} and bronze ({bronze_path!r}) is empty; "
            "generate data first (`lakeml generate`) or point source.path at your event logs"
        )
    new_files = sorted(visible - done)
    if not new_files:
        return BronzeResult(rows=0, files=0)
    # A filter on _metadata.file_path prunes the file listing: only new files are opened.
    new_lines = folder.where(F.col("_metadata.file_path").isin(new_files))
    if spec.format == "csv":
        # Each file's header line names the fields: not a record.
        header = spec.delimiter.join(f.name for f in spec.fields)
        new_lines = new_lines.where(F.col("value") != F.lit(header))
    written = Observation()
    rows = to_bronze(new_lines, last_ingested).observe(written, F.count(F.lit(1)).alias("rows"))
    # Silver selects its batch by ingested_at: the one column whose file min/max skip files.
    storage.append(rows, bronze_path, stats_columns=["ingested_at"])
    return BronzeResult(rows=int(written.get["rows"]), files=len(new_files))
