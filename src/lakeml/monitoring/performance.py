"""Realized performance: scores joined with the labels once a scored snapshot's horizon passed.

A snapshot's labels exist once its churn horizon has passed (gold writes them then). For every
(snapshot, model name, model version) in the scores table whose snapshot has labels and that
has no row yet in `monitoring/model_performance`, the scores are joined with the labels on
(entity, snapshot) and measured per group in one Spark plan: rows, positives, ROC AUC, PR AUC
(average precision), precision and lift in the top k%, capture at the version's threshold
(share of churners it labelled) and expected calibration error. Each row is also logged on the
version's training run in MLflow (step = the snapshot as YYYYMMDD).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from sklearn import metrics as skm

from lakeml.core import storage
from lakeml.scoring.contract import SNAPSHOT
from lakeml.scoring.scorer import PROBABILITY, key_condition
from lakeml.training.evaluate import top_k

KEYS = [SNAPSHOT, "model_name", "model_version"]
LABEL, PREDICTED = "__label", "predicted_churn"
METRICS = [
    "roc_auc",
    "pr_auc",
    "base_rate",
    "pr_auc_lift",
    "precision_at_top_k",
    "lift_at_top_k",
    "capture_at_threshold",
    "calibration_error",
]
SCHEMA = T.StructType(
    [
        T.StructField(SNAPSHOT, T.DateType()),
        T.StructField("model_name", T.StringType()),
        T.StructField("model_version", T.IntegerType()),
        T.StructField("run_id", T.StringType()),
        T.StructField("rows", T.LongType()),
        T.StructField("positives", T.LongType()),
        *[T.StructField(m, T.DoubleType()) for m in METRICS],
        T.StructField("top_k_pct", T.DoubleType()),
    ]
)


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: over equal-width score bins, the rows' share times
    |mean predicted - observed churn rate|."""
    index = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(index):
        inside = index == b
        total += inside.mean() * abs(p[inside].mean() - y[inside].mean())
    return float(total)


def group_metrics(frame: pd.DataFrame, top_k_pct: float, bins: int) -> dict[str, float | None]:
    """The realized metrics of one scored snapshot and version. Rank metrics are None when
    the snapshot's labels hold one class only."""
    y = frame[LABEL].to_numpy().astype(int)
    p = frame[PROBABILITY].to_numpy().astype(float)
    both = 0 < y.sum() < len(y)
    base_rate = float(y.mean())
    pr_auc = float(skm.average_precision_score(y, p)) if both else None
    top = top_k(y, p, top_k_pct)
    return {
        "roc_auc": float(skm.roc_auc_score(y, p)) if both else None,
        "pr_auc": pr_auc,
        "base_rate": base_rate,
        "pr_auc_lift": pr_auc / base_rate if pr_auc is not None else None,
        "precision_at_top_k": top["precision"],
        "lift_at_top_k": top["lift"] if base_rate > 0 else None,
        "capture_at_threshold": (
            float(frame.loc[y == 1, PREDICTED].mean()) if y.sum() > 0 else None
        ),
        "calibration_error": calibration_error(y, p, bins),
    }


def realized(joined: DataFrame, entity_col: str, top_k_pct: float, bins: int) -> DataFrame:
    """One row per (snapshot, model name, version) of scores joined with their labels.

    Rows are ranked by probability, ties by entity id, so the top k% is the same set in every
    run whatever order Spark hands the rows over in."""

    def measure(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.sort_values([PROBABILITY, entity_col], ascending=[False, True], kind="stable")
        first = frame.iloc[0]
        row = {
            SNAPSHOT: first[SNAPSHOT],
            "model_name": first["model_name"],
            "model_version": int(first["model_version"]),
            "run_id": first["run_id"],
            "rows": len(frame),
            "positives": int(frame[LABEL].sum()),
            **group_metrics(frame, top_k_pct, bins),
            "top_k_pct": float(top_k_pct),
        }
        return pd.DataFrame([row], columns=SCHEMA.fieldNames())

    return joined.groupBy(*KEYS).applyInPandas(measure, SCHEMA)


def joined_rows(
    scores: DataFrame, labels: DataFrame, entity_col: str, snapshot_col: str, label_col: str
) -> DataFrame:
    """Scored rows with their label: an entity scored on a snapshot and labelled on it."""
    labelled = labels.select(
        F.col(entity_col),
        F.col(snapshot_col).cast("date").alias(SNAPSHOT),
        F.col(label_col).cast("int").alias(LABEL),
    )
    return scores.filter(F.col(PROBABILITY).isNotNull()).join(
        labelled, on=[entity_col, SNAPSHOT], how="inner"
    )


# --- storage edge -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PerformanceResult:
    """What a realized-performance update did: the rows it wrote, or why it had nothing to do."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    table_path: str | None = None
    table_version: int | None = None
    waiting: list[str] = field(default_factory=list)  # scored snapshots without labels yet
    skipped: str | None = None


def matured_keys(
    spark: SparkSession, paths: dict[str, str], snapshot_col: str
) -> tuple[list[tuple[dt.date, str, int]], list[str]]:
    """(scored keys whose snapshot has labels and no performance row yet, snapshots waiting)."""
    performance_path = paths["performance"]
    scored = {
        (r[0], r[1], int(r[2]))
        for r in storage.read(spark, paths["scores"]).select(*KEYS).distinct().collect()
    }
    labelled = {
        r[0]
        for r in storage.read(spark, paths["labels"])
        .select(F.col(snapshot_col).cast("date"))
        .distinct()
        .collect()
    }
    done: set[tuple[dt.date, str, int]] = set()
    if storage.exists(spark, performance_path):
        done = {
            (r[0], r[1], int(r[2]))
            for r in storage.read(spark, performance_path).select(*KEYS).collect()
        }
    todo = sorted(k for k in scored if k[0] in labelled and k not in done)
    waiting = sorted({k[0].isoformat() for k in scored if k[0] not in labelled})
    return todo, waiting


def update(
    spark: SparkSession,
    paths: dict[str, str],
    columns: tuple[str, str, str],
    top_k_pct: float,
    bins: int,
) -> PerformanceResult:
    """Write the realized performance of every matured scored snapshot that lacks it.

    `paths` holds the scores, labels and performance tables; `columns` the labels' entity,
    snapshot and label column names. Idempotent: a key already measured is not measured again,
    and a rerun of the same keys replaces their rows.
    """
    entity_col, snapshot_col, label_col = columns
    for name in ("scores", "labels"):
        if not storage.exists(spark, paths[name]):
            return PerformanceResult(skipped=f"no {name} table at {paths[name]} yet")
    todo, waiting = matured_keys(spark, paths, snapshot_col)
    if not todo:
        return PerformanceResult(waiting=waiting, skipped="no matured scored snapshot lacks a row")
    condition = " OR ".join(f"({key_condition(*k)})" for k in todo)
    scores = storage.read(spark, paths["scores"]).filter(F.expr(condition))
    labels = storage.read(spark, paths["labels"])
    joined = joined_rows(scores, labels, entity_col, snapshot_col, label_col)
    collected = realized(joined, entity_col, top_k_pct, bins).collect()
    storage.replace_where(spark.createDataFrame(collected, SCHEMA), paths["performance"], condition)
    rows = [r.asDict() for r in collected]
    return PerformanceResult(
        rows=rows,
        table_path=paths["performance"],
        table_version=storage.version(spark, paths["performance"]),
        waiting=waiting,
    )


def log_to_mlflow(client: Any, rows: list[dict[str, Any]]) -> int:
    """Each row's metrics on its version's training run as `realized_<metric>`, step = the
    snapshot as YYYYMMDD; returns how many rows were logged (rows without a run are not)."""
    from mlflow.entities import Metric

    logged = 0
    now = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
    for r in rows:
        if not r.get("run_id"):
            continue
        step = int(r[SNAPSHOT].strftime("%Y%m%d"))
        values = {m: r[m] for m in ["rows", "positives", *METRICS]}
        metrics = [
            Metric(f"realized_{k}", float(v), now, step)
            for k, v in values.items()
            if v is not None and math.isfinite(float(v))
        ]
        client.log_batch(r["run_id"], metrics=metrics)
        logged += 1
    return logged
