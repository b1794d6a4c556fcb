"""Customer snapshot tables (one row per entity, like the Telco CSV) -> gold features and labels.

Configuration, not code, adapts lakeml to such a table (`source.kind: table`): which column
is the entity, which the label and its positive values, which columns are numbers. Values
that cannot be read as their configured type send the row to quarantine with the rule;
blank strings are missing values; exact duplicate rows are dropped and counted; different
rows for one entity and snapshot all go to quarantine (which one is true is unknown).

Column names are kept except for the characters Delta cannot store in a name (` ,;{}()=`,
tabs, newlines), which become `_` (`Account length` -> `Account_length`); config may name
a column either way. A table without an id column gets one from a hash of each row's values
(`entity_from_row`), and a table shipped as several files (train and test) can keep each
row's file name in a column (`file_name_col`) for `train.split.method: column`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from functools import reduce

from pyspark.sql import Column, DataFrame, Observation, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeml.core import storage
from lakeml.core.config import TableSourceConfig
from lakeml.core.errors import LakemlError
from lakeml.core.storage import NO_STATS

# The Spark types `source.table.types` names, by `simpleString()` (config_load.SPARK_TYPES).
_TYPES: dict[str, T.DataType] = {
    t.simpleString(): t
    for t in (
        T.StringType(), T.BooleanType(), T.ByteType(), T.ShortType(), T.IntegerType(),
        T.LongType(), T.FloatType(), T.DoubleType(), T.DateType(), T.TimestampType(),
        T.TimestampNTZType(),
    )
}  # fmt: skip


def spark_type(name: str) -> T.DataType:
    """The DataType of a validated `source.table.types` value (`int`, `decimal(10,2)`)."""
    decimal = re.fullmatch(r"decimal\((\d+),(\d+)\)", name)
    return T.DecimalType(int(decimal[1]), int(decimal[2])) if decimal else _TYPES[name]


_DELTA_FORBIDDEN = re.compile(r"[ ,;{}()\n\t=]")
# Hex digits of the SHA-256 kept for an id made from a row: 80 bits, so a collision among
# a billion rows has odds of about 4e-7.
ROW_ID_HEX = 20


def delta_name(name: str) -> str:
    """`name` with each character Delta cannot store in a column name replaced by `_`."""
    return _DELTA_FORBIDDEN.sub("_", name)


def with_delta_names(raw: DataFrame) -> DataFrame:
    """The table with Delta-storable column names (see `delta_name`)."""
    return raw.toDF(*[delta_name(c) for c in raw.columns])


def named_for_delta(t: TableSourceConfig) -> TableSourceConfig:
    """The table config with every column name it holds written as `delta_name` does."""
    return t.model_copy(
        update={
            "entity_col": delta_name(t.entity_col),
            "snapshot_col": delta_name(t.snapshot_col),
            "label_col": delta_name(t.label_col),
            "types": {delta_name(c): v for c, v in t.types.items()},
            "drop_cols": [delta_name(c) for c in t.drop_cols],
            "file_name_col": delta_name(t.file_name_col),
        }
    )


def with_row_id(raw: DataFrame, id_col: str, exclude: tuple[str, ...] = ()) -> DataFrame:
    """Add `id_col`: a hash of the row's values (read as text, blanks as missing), so the
    same row gets the same id on every run and from any file. Columns in `exclude` (such as
    the file name) are not hashed."""
    if id_col in raw.columns:
        raise LakemlError(
            f"source.table.entity_from_row makes the column {id_col!r}, but the table has one; "
            "set entity_from_row to false or name another source.table.entity_col"
        )
    values = F.to_json(
        F.struct(*[_blank_to_null(c).alias(c) for c in raw.columns if c not in exclude])
    )
    return raw.select(F.substring(F.sha2(values, 256), 1, ROW_ID_HEX).alias(id_col), "*")


def _blank_to_null(name: str) -> Column:
    trimmed = F.trim(F.col(name).cast("string"))
    return F.when(trimmed == "", F.lit(None)).otherwise(trimmed)


def clean(raw: DataFrame, t: TableSourceConfig, snapshot_col: str) -> DataFrame:
    """Typed columns plus `rule`: the first rule the row fails (null when it is valid).

    Every source column is kept; configured `types` are applied with `try_cast`, so a value
    that is present but not castable is flagged `wrong_type:<col>` instead of becoming null.
    Casts are built as Columns from the validated type names: no config text is parsed as SQL.
    """
    missing = [c for c in [t.entity_col, t.label_col, *t.types] if c not in raw.columns]
    if t.snapshot_col and t.snapshot_col not in raw.columns:
        missing.append(t.snapshot_col)
    if missing:
        raise LakemlError(
            f"the source table has no column(s) {', '.join(missing)}; "
            f"its columns are: {', '.join(raw.columns)}"
        )
    text = {c: _blank_to_null(c) for c in raw.columns if c not in t.drop_cols}
    cast = {c: F.col(c).try_cast(spark_type(name)) for c, name in t.types.items()}
    typed = {c: cast.get(c, F.col(c)) for c in text}
    snapshot = (
        F.to_date(F.lit(t.snapshot_date)) if t.snapshot_date else F.to_date(F.col(t.snapshot_col))
    )
    checks = [
        (F.col(t.entity_col).isNull(), f"missing_field:{t.entity_col}"),
        (F.col(t.label_col).isNull(), f"missing_field:{t.label_col}"),
        (F.col(snapshot_col).isNull(), "missing_field:snapshot_date"),
        *[
            (
                F.col(c).isNotNull() & cast[c].isNull(),
                f"wrong_type:{c}",
            )
            for c in t.types
        ],
    ]
    rule = reduce(
        lambda acc, check: acc.when(check[0], F.lit(check[1])),
        checks[1:],
        F.when(checks[0][0], F.lit(checks[0][1])),
    )
    as_text = raw.select(*[text[c].alias(c) for c in text]).withColumn(snapshot_col, snapshot)
    return as_text.select(
        *[typed[c].alias(c) for c in text if c != snapshot_col],
        F.col(snapshot_col),
        rule.alias("rule"),
        F.to_json(F.struct(*[F.col(c) for c in text])).alias("value"),
    )


def mark_duplicates(checked: DataFrame) -> DataFrame:
    """Add `duplicate`: true on every copy but one of a valid row that appears more than once
    with exactly the same values (rejected rows are never duplicates: all go to quarantine)."""
    values = [c for c in checked.columns if c != "rule"]
    copies = Window.partitionBy(*values).orderBy(values[0])
    is_copy = F.col("rule").isNull() & (F.row_number().over(copies) > 1)
    return checked.select("*", is_copy.alias("duplicate"))


def flag_conflicts(rows: DataFrame, entity_col: str, snapshot_col: str) -> DataFrame:
    """Set `rule` to `conflicting_rows:<entity_col>` on every valid row whose entity and
    snapshot appear on another valid row (once exact duplicates are marked or gone, such
    rows disagree somewhere). Rows already rejected or marked `duplicate` are left alone."""
    candidate = F.col("rule").isNull()
    if "duplicate" in rows.columns:
        candidate = candidate & ~F.col("duplicate")
    per_key = Window.partitionBy(entity_col, snapshot_col)
    shared = F.count(F.when(candidate, F.lit(1))).over(per_key) > 1
    conflict = F.when(candidate & shared, F.lit(f"conflicting_rows:{entity_col}"))
    return rows.select(
        *[conflict.otherwise(F.col(c)).alias(c) if c == "rule" else F.col(c) for c in rows.columns]
    )


def to_features(valid: DataFrame, t: TableSourceConfig, snapshot_col: str) -> DataFrame:
    """Entity, snapshot date, then every other column except the label and the dropped ones."""
    features = [
        c
        for c in valid.columns
        if c not in {t.entity_col, snapshot_col, t.label_col, t.snapshot_col, "rule", "value"}
    ]
    return valid.select(t.entity_col, snapshot_col, *features)


def to_labels(
    valid: DataFrame, t: TableSourceConfig, snapshot_col: str, label_out: str
) -> DataFrame:
    """Entity, snapshot date, label as 0/1 (1 when the label value is one of positive_values)."""
    positive = F.col(t.label_col).cast("string").isin(t.positive_values)
    return valid.select(
        t.entity_col, snapshot_col, F.when(positive, 1).otherwise(0).cast("int").alias(label_out)
    )


@dataclass(frozen=True)
class TableResult:
    input_rows: int
    silver_rows: int
    quarantined: int
    quarantine_by_rule: dict[str, int]
    duplicates_removed: int
    snapshots: list[str]

    @property
    def reconciles(self) -> bool:
        """Every input row is accounted for: kept, quarantined or an exact duplicate."""
        return self.input_rows == self.silver_rows + self.quarantined + self.duplicates_removed


def _read(spark: SparkSession, t: TableSourceConfig, path: str) -> DataFrame:
    """The table as Spark reads it, plus the file name column when one is configured."""
    try:
        raw = spark.read.format(t.format).options(**t.options).load(path)
        if t.file_name_col:
            if t.file_name_col in raw.columns:
                raise LakemlError(
                    f"source.table.file_name_col {t.file_name_col!r} is already a column of "
                    "the table; name another"
                )
            raw = raw.select("*", F.col("_metadata.file_name").alias(t.file_name_col))
        return raw
    except LakemlError:
        raise
    except Exception as exc:  # Spark raises AnalysisException subclasses for missing paths
        message = f"cannot read a {t.format} table at {path!r}: {exc}".splitlines()[0]
        raise LakemlError(message) from None


def _replace(
    df: DataFrame, path: str, dates: list[date], snapshot_col: str, stats_columns: Sequence[str]
) -> int:
    """Replace the snapshots `dates` of the table with `df`'s rows; return rows written. The
    log keeps file min/max of `stats_columns` only (reads select by the snapshot partition)."""
    in_dates = F.col(snapshot_col).isin([F.lit(d) for d in dates])
    where = f"{snapshot_col} IN ({', '.join(repr(d.isoformat()) for d in dates)})"
    written = Observation()
    rows = df.where(in_dates).observe(written, F.count(F.lit(1)).alias("rows"))
    storage.replace_where(rows, path, where, [snapshot_col], stats_columns=stats_columns)
    return int(written.get["rows"])


def update(
    spark: SparkSession,
    source: TableSourceConfig,
    input_path: str,
    snapshot_col: str,
    label_col: str,
    paths: dict[str, str],
) -> TableResult:
    """Read the table at `input_path`; write silver, quarantine, features and labels (the
    table paths in `paths`); `label_col` names the 0/1 label column written to labels.

    Each table is replaced for the snapshot dates present in the input, so a rerun changes
    nothing and other snapshots (earlier extracts of the same table) are kept. The input is
    judged once and cached; one aggregation gives the dates and the counts from the input,
    and the writes count the rows they write, so input = kept + quarantined + duplicates is
    a check of what was written and not an identity.
    """
    t = named_for_delta(source)
    raw = with_delta_names(_read(spark, t, input_path))
    if t.entity_from_row:
        raw = with_row_id(raw, t.entity_col, exclude=(t.file_name_col,))
    # One shuffle by entity serves both windows below (both keys include it). Not by the
    # snapshot too: a snapshot date from config is a constant, which clusters nothing.
    checked = clean(raw, t, snapshot_col).repartition(t.entity_col)
    judged = flag_conflicts(mark_duplicates(checked), t.entity_col, snapshot_col).persist()
    try:
        groups = judged.groupBy("rule", "duplicate", snapshot_col).count().collect()
        if not groups:
            raise LakemlError(f"the source table at {input_path!r} has no rows")
        dates = sorted({r[snapshot_col] for r in groups if r[snapshot_col] is not None})
        if not dates:
            raise LakemlError(
                f"no row of the source table at {input_path!r} has a snapshot date; "
                "set source.table.snapshot_date or fix the column source.table.snapshot_col"
            )
        valid = judged.where(F.col("rule").isNull() & ~F.col("duplicate")).drop(
            "rule", "value", "duplicate"
        )
        quarantine = judged.where(F.col("rule").isNotNull()).select(
            "value", snapshot_col, "rule", F.current_timestamp().alias("quarantined_at")
        )
        outputs = {
            "silver": valid,
            "quarantine": quarantine,
            "features": to_features(valid, t, snapshot_col),
            "labels": to_labels(valid, t, snapshot_col, label_col),
        }
        # Only the label's min/max is read from the log (training's preflight).
        stats = {"labels": [label_col]}
        # The four writes are independent (each replaces the input's snapshots of its own
        # table, so a rerun after a crash between any of them heals all four): run at once,
        # their Delta commits and the driver's planning overlap instead of queueing.
        with ThreadPoolExecutor(max_workers=len(outputs)) as pool:
            pending = {
                name: pool.submit(
                    _replace, df, paths[name], dates, snapshot_col, stats.get(name, NO_STATS)
                )
                for name, df in outputs.items()
            }
            written = {name: job.result() for name, job in pending.items()}
        kept, quarantined = written["silver"], written["quarantine"]
    finally:
        judged.unpersist()
    by_rule: dict[str, int] = {}
    for r in groups:
        if r["rule"] is not None:
            by_rule[r["rule"]] = by_rule.get(r["rule"], 0) + int(r["count"])
    return TableResult(
        input_rows=sum(int(r["count"]) for r in groups),
        silver_rows=kept,
        quarantined=quarantined,
        quarantine_by_rule=by_rule,
        duplicates_removed=sum(int(r["count"]) for r in groups if r["duplicate"]),
        snapshots=[d.isoformat() for d in dates],
    )
