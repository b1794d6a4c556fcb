"""Customer snapshot tables (one row per entity, like the Telco CSV) -> gold features and labels.

Configuration, not code, adapts lakeml to such a table (`source.kind: table`): which column
is the entity, which the label and its positive values, which columns are numbers. Values
that cannot be read as their configured type send the row to quarantine with the rule;
blank strings are missing values; exact duplicate rows are dropped and counted; different
rows for one entity and snapshot all go to quarantine (which one is true is unknown).
"""

from __future__ import annotations

from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakeml.core import storage
from lakeml.core.config import Config, TableSourceConfig
from lakeml.core.errors import LakemlError


def _blank_to_null(name: str) -> Column:
    trimmed = F.trim(F.col(name).cast("string"))
    return F.when(trimmed == "", F.lit(None)).otherwise(trimmed)


def clean(raw: DataFrame, t: TableSourceConfig, snapshot_col: str) -> DataFrame:
    """Typed columns plus `rule`: the first rule the row fails (null when it is valid).

    Every source column is kept; configured `types` are applied with `try_cast`, so a value
    that is present but not castable is flagged `wrong_type:<col>` instead of becoming null.
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
    typed = {
        c: F.expr(f"try_cast(`{c}` AS {t.types[c]})") if c in t.types else F.col(c) for c in text
    }
    snapshot = (
        F.to_date(F.lit(t.snapshot_date)) if t.snapshot_date else F.to_date(F.col(t.snapshot_col))
    )
    checks = [
        (F.col(t.entity_col).isNull(), f"missing_field:{t.entity_col}"),
        (F.col(t.label_col).isNull(), f"missing_field:{t.label_col}"),
        (F.col(snapshot_col).isNull(), "missing_field:snapshot_date"),
        *[
            (
                F.col(c).isNotNull() & F.expr(f"try_cast(`{c}` AS {t.types[c]})").isNull(),
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


def flag_conflicts(deduplicated: DataFrame, entity_col: str, snapshot_col: str) -> DataFrame:
    """Set `rule` to `conflicting_rows:<entity_col>` on every row whose entity and snapshot
    appear more than once (after exact duplicates are gone, such rows disagree somewhere)."""
    per_key = Window.partitionBy(entity_col, snapshot_col)
    conflict = F.when(F.count(F.lit(1)).over(per_key) > 1, F.lit(f"conflicting_rows:{entity_col}"))
    return deduplicated.select(
        *[conflict.alias(c) if c == "rule" else F.col(c) for c in deduplicated.columns]
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


def update(spark: SparkSession, cfg: Config, input_path: str | None = None) -> dict[str, Any]:
    """Read the configured table, write silver, quarantine, gold features and labels.

    Each table is replaced for the snapshot dates present in the input, so a rerun changes
    nothing and other snapshots (earlier extracts of the same table) are kept.
    """
    t = cfg.source.table
    path = input_path or cfg.source_path
    snapshot_col = cfg.train.snapshot_col
    try:
        raw = spark.read.format(t.format).options(**t.options).load(path)
    except Exception as exc:  # Spark raises AnalysisException subclasses for missing paths
        message = f"cannot read a {t.format} table at {path!r}: {exc}".splitlines()[0]
        raise LakemlError(message) from None
    checked = clean(raw, t, snapshot_col).cache()
    total = checked.count()
    if total == 0:
        checked.unpersist()
        raise LakemlError(f"the source table at {path!r} has no rows")
    dates = [r[0] for r in checked.select(snapshot_col).distinct().collect() if r[0] is not None]
    valid_all = checked.where(F.col("rule").isNull())
    deduplicated = valid_all.dropDuplicates()
    # Counted from the input, independently of what the writes below keep, so that
    # input = kept + quarantined + duplicates is a check and not an identity.
    duplicates = valid_all.count() - deduplicated.count()
    resolved = flag_conflicts(deduplicated, t.entity_col, snapshot_col)
    valid = resolved.where(F.col("rule").isNull()).drop("rule", "value")
    rejected = checked.where(F.col("rule").isNotNull()).unionByName(
        resolved.where(F.col("rule").isNotNull())
    )
    quarantine = rejected.select(
        "value", snapshot_col, "rule", F.current_timestamp().alias("quarantined_at")
    )
    in_dates = F.col(snapshot_col).isin([F.lit(d) for d in dates])
    where = f"{snapshot_col} IN ({', '.join(repr(d.isoformat()) for d in dates)})"
    outputs = {
        "silver": valid,
        "quarantine": quarantine,
        "features": to_features(valid, t, snapshot_col),
        "labels": to_labels(valid, t, snapshot_col, cfg.train.label_col),
    }
    for name, df in outputs.items():
        storage.replace_where(df.where(in_dates), cfg.table(name), where, [snapshot_col])
    kept = storage.read(spark, cfg.table("silver")).where(in_dates).count()
    quarantined = storage.read(spark, cfg.table("quarantine")).where(in_dates).count()
    by_rule = {r["rule"]: r["count"] for r in rejected.groupBy("rule").count().collect()}
    checked.unpersist()
    return {
        "input_rows": total,
        "silver_rows": kept,
        "quarantined": quarantined,
        "quarantine_by_rule": by_rule,
        "duplicates_removed": duplicates,
        "snapshots": sorted(d.isoformat() for d in dates),
    }
