"""The scoring input: the snapshot to score, checked against the model signature before
anything runs (columns, types, one row per entity, no nulls a pyfunc model cannot take)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from py4j.protocol import Py4JJavaError
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeml.core import failures, storage
from lakeml.core.errors import LakemlError
from lakeml.scoring.model_ref import SIGNATURE_TYPES, Feature

SNAPSHOT = "snapshot_date"


def check_input(
    schema: T.StructType, features: list[Feature], entity_col: str, uri: str, source: str
) -> None:
    """Raise naming every missing or mistyped column of `source` the model needs."""
    present = {f.name: f.dataType for f in schema.fields}
    missing = [c for c in [entity_col, *(f.name for f in features)] if c not in present]
    mistyped = [
        f"{f.name} ({present[f.name].simpleString()}, model expects {f.type})"
        for f in features
        if f.name in present and not isinstance(present[f.name], SIGNATURE_TYPES[f.type][1])
    ]
    problems = []
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    if mistyped:
        problems.append(f"mistyped columns: {', '.join(mistyped)}")
    if problems:
        raise LakemlError(
            f"{source} does not match the signature of model {uri}: {'; '.join(problems)}. "
            "Score a table with the model's feature columns (rebuild it with `lakeml features`) "
            "or use a model trained on this table's columns"
        )


def conform_input(
    df: DataFrame, features: list[Feature], entity_col: str, snapshot_col: str
) -> DataFrame:
    """Keys plus the signature columns, cast to the signature types (checked as safe before)."""
    return df.select(
        F.col(entity_col),
        F.col(snapshot_col).cast("date").alias(SNAPSHOT),
        *[F.col(f.name).cast(f.spark_type).alias(f.name) for f in features],
    )


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise LakemlError(f"snapshot date {text!r} is not a date; write it as YYYY-MM-DD") from None


def read_input(spark: SparkSession, path: str) -> DataFrame:
    """The Delta table at `path` (the features table, or --input), else a Parquet table."""
    if storage.exists(spark, path):
        return storage.read(spark, path)
    try:
        return spark.read.parquet(path)
    except (AnalysisException, Py4JJavaError) as exc:
        # Nothing there to read, or files that are not Parquet (reading their footers fails);
        # any other failure (no permission, ...) is for `lakeml.core.failures` to describe.
        if not isinstance(exc, AnalysisException) and not failures.is_not_parquet(exc):
            raise
        raise LakemlError(
            f"no Delta or Parquet table at {path!r} ({failures.reason(exc)}); point --input at one"
        ) from None


def select_snapshot(
    df: DataFrame, snapshot_col: str, snapshot_date: str | None, source: str
) -> tuple[DataFrame, dt.date]:
    """Rows of the chosen snapshot (default the latest). A table without a snapshot column is
    scored whole, as of `snapshot_date` or today (UTC)."""
    if snapshot_col not in df.columns:
        day = (
            parse_date(snapshot_date) if snapshot_date else dt.datetime.now(dt.timezone.utc).date()
        )
        return df.withColumn(snapshot_col, F.lit(day)), day
    snapshot = F.col(snapshot_col).cast("date")
    if snapshot_date:
        day = parse_date(snapshot_date)
    else:
        latest = df.agg(F.max(snapshot).alias("latest")).first()
        if latest is None or latest["latest"] is None:
            raise LakemlError(f"{source} is empty: there is nothing to score")
        day = latest["latest"]
    return df.filter(snapshot == F.lit(day)), day


def input_stats(df: DataFrame, entity_col: str, integer_cols: list[str]) -> dict[str, int]:
    """Rows, entity-key problems and nulls in integer columns, in one pass."""
    row = df.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_distinct(entity_col).alias("entities"),
        F.count_if(F.col(entity_col).isNull()).alias("null_entities"),
        *[F.count_if(F.col(c).isNull()).alias(f"nulls:{c}") for c in integer_cols],
    ).first()
    return row.asDict() if row else {}


def available_snapshots(df: DataFrame, snapshot_col: str, limit: int = 10) -> list[str]:
    rows = (
        df.select(F.col(snapshot_col).cast("date").alias("d"))
        .distinct()
        .orderBy(F.desc("d"))
        .limit(limit)
        .collect()
    )
    return [str(r["d"]) for r in rows]


def check_rows(
    stats: dict[str, int],
    entity_col: str,
    integer_cols: list[str],
    pyfunc: bool,
    source: str,
    uri: str,
) -> None:
    """Raise if the input is empty, has missing or repeated entity ids, or holds nulls a pyfunc
    model's integer columns cannot take (MLflow rejects them during scoring)."""
    rows = stats.get("rows", 0)
    if rows == 0:
        raise LakemlError(f"{source} is empty: there is nothing to score")
    duplicates = rows - stats["null_entities"] - stats["entities"]
    if stats["null_entities"] or duplicates:
        raise LakemlError(
            f"{source} has {stats['null_entities']} rows without {entity_col} and {duplicates} "
            f"repeated {entity_col} values; scores need exactly one row per {entity_col}"
        )
    nulls = {c: stats[f"nulls:{c}"] for c in integer_cols if stats[f"nulls:{c}"]}
    if pyfunc and nulls:
        listed = ", ".join(f"{c} ({n} nulls)" for c, n in nulls.items())
        raise LakemlError(
            f"{source} has nulls in columns model {uri} declares as integers: {listed}; MLflow "
            "cannot pass nulls in integer columns to a pyfunc model. Log the model with these "
            "columns as double in its signature, or fill the nulls in the input"
        )


@dataclass(frozen=True)
class ScoringInput:
    """The rows to score, checked and conformed, with where they came from."""

    rows: DataFrame
    snapshot: dt.date
    count: int
    source: str
    entity_col: str
    snapshot_col: str


@dataclass(frozen=True)
class InputSpec:
    """What to score and what the model needs of it."""

    source: str  # the features table, or the Delta or Parquet table given with --input
    snapshot_date: str | None  # None: the latest snapshot
    uri: str
    features: list[Feature]
    pyfunc: bool
    entity_col: str
    snapshot_col: str


def load_input(spark: SparkSession, spec: InputSpec) -> ScoringInput:
    """Read the snapshot to score and check it against the signature before anything runs."""
    source, features, uri = spec.source, spec.features, spec.uri
    entity_col, snapshot_col, snapshot_date = spec.entity_col, spec.snapshot_col, spec.snapshot_date
    pyfunc = spec.pyfunc
    raw = read_input(spark, source)
    check_input(raw.schema, features, entity_col, uri, source)
    selected, day = select_snapshot(raw, snapshot_col, snapshot_date, source)
    conformed = conform_input(selected, features, entity_col, snapshot_col)
    integer_cols = [f.name for f in features if f.type in ("long", "integer")]
    stats = input_stats(conformed, entity_col, integer_cols)
    if stats.get("rows", 0) == 0 and snapshot_date and snapshot_col in raw.columns:
        known = available_snapshots(raw, snapshot_col)
        raise LakemlError(
            f"{source} has no rows for snapshot {day}; snapshots there (latest first): "
            f"{', '.join(known) or 'none'}; pass --snapshot-date with one of them"
        )
    check_rows(stats, entity_col, integer_cols, pyfunc, source, uri)
    return ScoringInput(conformed, day, int(stats["rows"]), source, entity_col, snapshot_col)
