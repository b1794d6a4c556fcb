"""Feature drift between a scored snapshot and the model's training window -> monitoring table.

For every input column of the model signature: the population stability index (PSI) of its
non-null values, PSI = sum over bins of (scored share - training share) * ln(scored / training),
with quantile bins of the training distribution for numbers and one bin per category for
strings (an empty bin counts as `psi.EPSILON`), and the change in its null rate. The training
window is the feature table at the version the model was trained on (Delta time travel),
restricted to its training snapshots, all read from the model version's lineage tags.
The binning and the PSI sums are `lakeml.scoring.psi`'s; this module reads the training
window, decides what drifted, writes the rows and logs them to MLflow.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
from dataclasses import dataclass, field
from typing import Any

import mlflow
import pandas as pd
from py4j.protocol import Py4JJavaError
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeml.core import storage
from lakeml.core.config import MonitorConfig
from lakeml.core.errors import LakemlError, first_line
from lakeml.scoring.psi import ROWS, compute_drift, quantile_edges, score_psi, split_features
from lakeml.scoring.scorer import PROBABILITY, key_condition
from lakeml.tracking import tags as tag
from lakeml.training import trainset


def drift_rows(
    stats: DataFrame,
    snapshot_date: dt.date,
    model_name: str,
    model_version: int,
    psi_threshold: float,
    null_rate_threshold: float,
) -> DataFrame:
    """The monitoring table rows: a feature drifted if its PSI is over the threshold or its
    null rate moved by more than the null-rate threshold."""
    change = F.col("null_rate_scored") - F.col("null_rate_train")
    psi_over = F.coalesce(F.col("psi") > F.lit(psi_threshold), F.lit(False))
    nulls_moved = F.abs(change) > F.lit(null_rate_threshold)
    return stats.select(
        F.lit(snapshot_date).cast("date").alias("snapshot_date"),
        F.lit(model_name).alias("model_name"),
        F.lit(model_version).cast("int").alias("model_version"),
        F.col("feature"),
        F.col("psi"),
        F.col("null_rate_train"),
        F.col("null_rate_scored"),
        change.alias("null_rate_change"),
        (psi_over | nulls_moved).alias("drifted"),
        F.current_timestamp().alias("computed_at"),
    )


def drift_warnings(
    rows: list[dict[str, Any]], psi_threshold: float, null_rate_threshold: float
) -> list[str]:
    """One line per drifted feature saying why, for the run summary."""
    lines = []
    for r in sorted(rows, key=lambda r: r["feature"]):
        reasons = []
        if r["psi"] is not None and r["psi"] > psi_threshold:
            reasons.append(f"PSI {r['psi']:.3f} > {psi_threshold}")
        if abs(r["null_rate_change"]) > null_rate_threshold:
            reasons.append(f"null rate {r['null_rate_train']:.3f} -> {r['null_rate_scored']:.3f}")
        if reasons:
            lines.append(f"{r['feature']}: {'; '.join(reasons)}")
    return lines


# --- storage edge -----------------------------------------------------------------------------


def training_window(
    spark: SparkSession,
    tags: dict[str, str],
    snapshot_col: str,
    features: list[str],
    reference: str = "train_window",
) -> DataFrame:
    """The model's training rows, from its lineage tags (Delta time travel): all of them
    (`train_window`) or its latest training snapshot's (`latest_train_snapshot`)."""
    missing = [t for t in tag.DRIFT_LINEAGE if not tags.get(t)]
    if missing:
        raise LakemlError(
            f"the model version has no {', '.join(missing)} tag, so its training window is "
            "unknown; models registered by `lakeml train` carry it"
        )
    path, version = tags[tag.FEATURES_PATH], tags[tag.FEATURES_VERSION]
    try:
        df = storage.read(spark, path, version=int(version))
        columns = df.columns
    except (AnalysisException, Py4JJavaError, ValueError) as exc:
        raise LakemlError(
            f"cannot read the training features {path} at version {version} "
            f"({first_line(exc)}); "
            "was the table vacuumed or moved?"
        ) from None
    split_col = (
        [tags.get(tag.SPLIT_COLUMN, "")] if tags.get(tag.SPLIT_METHOD) == trainset.COLUMN else []
    )
    absent = [f for f in [snapshot_col, *split_col, *features] if f not in columns]
    if absent:
        raise LakemlError(f"the training features {path} lack columns {', '.join(absent)}")
    try:
        dates = [dt.date.fromisoformat(d.strip()) for d in tags[tag.TRAIN_SNAPSHOTS].split(",")]
    except ValueError:
        raise LakemlError(
            f"the train_snapshots tag {tags[tag.TRAIN_SNAPSHOTS]!r} is not a comma-separated "
            "list of YYYY-MM-DD dates"
        ) from None
    if reference == "latest_train_snapshot":
        dates = [max(dates)]
    window = df.filter(F.col(snapshot_col).cast("date").isin(dates))
    if tags.get(tag.SPLIT_METHOD) in (trainset.RANDOM, trainset.COLUMN):
        window = window.filter(hashed_train_rows(tags))
    return window.select(*features)


def hashed_train_rows(tags: dict[str, str]) -> Column:
    """The train window of a random or column split, from its `split_fractions`,
    `entity_col` (and for a column split `split_column`, `split_test_values`) tags."""
    method = tags.get(tag.SPLIT_METHOD)
    try:
        parts = dict(p.split("=", 1) for p in tags[tag.SPLIT_FRACTIONS].split(","))
        cut = float(parts["test"]) + float(parts["validation"])
        seed = int(parts["seed"])
        entity = tags[tag.ENTITY_COL]
        if method == trainset.COLUMN:
            column, test_values = tags[tag.SPLIT_COLUMN], json.loads(tags[tag.SPLIT_TEST_VALUES])
    except (KeyError, ValueError):
        raise LakemlError(
            f"the model version's {method}-split tags (split_fractions="
            f"{tags.get(tag.SPLIT_FRACTIONS)!r}, entity_col={tags.get(tag.ENTITY_COL)!r}) are "
            "incomplete, so its training rows are unknown"
        ) from None
    rows = trainset.entity_bucket(entity, seed) >= F.lit(cut)
    if method == trainset.COLUMN:
        rows = rows & ~F.col(column).cast("string").isin(*test_values)
    return rows


def metric_key(text: str) -> str:
    """A feature name as an MLflow metric key (letters, digits, _ - . / and spaces only)."""
    return re.sub(r"[^0-9A-Za-z_\-./ ]", "_", text)


def log_to_mlflow(
    rows: list[dict[str, Any]],
    monitor: MonitorConfig,
    snapshot_date: dt.date,
    model_name: str,
    model_version: int,
    headline: float | None = None,
) -> str:
    """One monitoring run per check: PSI and null-rate change per feature, and the table."""
    metrics = {}
    for r in rows:
        if r["psi"] is not None:
            metrics[f"psi.{metric_key(r['feature'])}"] = float(r["psi"])
        metrics[f"null_rate_change.{metric_key(r['feature'])}"] = float(r["null_rate_change"])
    metrics["drifted_features"] = float(sum(bool(r["drifted"]) for r in rows))
    if headline is not None:
        metrics["score_psi"] = float(headline)
    table = pd.DataFrame(rows).assign(
        snapshot_date=lambda d: d["snapshot_date"].astype(str),
        computed_at=lambda d: d["computed_at"].astype(str),
    )
    with mlflow.start_run(
        run_name=f"drift {model_name} v{model_version} {snapshot_date}",
        nested=mlflow.active_run() is not None,
        tags={
            "lakeml.kind": "monitoring",
            "model_name": model_name,
            "model_version": str(model_version),
            "snapshot_date": str(snapshot_date),
        },
    ) as run:
        mlflow.log_params(
            {
                "reference": monitor.reference,
                "excluded": ",".join(monitor.exclude)[:500],
                "psi_bins": monitor.psi_bins,
                "psi_threshold": monitor.psi_threshold,
                "null_rate_threshold": monitor.null_rate_threshold,
            }
        )
        mlflow.log_metrics(metrics)
        mlflow.log_table(table, artifact_file="feature_drift.json")
    return run.info.run_id


def excluded(names: list[str], patterns: list[str]) -> list[str]:
    """The names matching any of the glob `patterns` (monitor.exclude)."""
    return [n for n in names if any(fnmatch.fnmatchcase(n, pat) for pat in patterns)]


@dataclass(frozen=True)
class DriftResult:
    """The drift check of one scored snapshot: warnings per drifted feature, or why skipped."""

    warnings: list[str] = field(default_factory=list)
    drifted_features: list[str] = field(default_factory=list)
    features_checked: int = 0
    table_path: str | None = None
    table_version: int | None = None
    mlflow_run_id: str | None = None
    skipped: str | None = None
    reference: str | None = None
    excluded: list[str] = field(default_factory=list)
    # The headline: PSI of the scores against the test window's, or why it is not known.
    score_psi: float | None = None
    score_psi_skipped: str | None = None


def check_drift(
    spark: SparkSession,
    monitor: MonitorConfig,
    drift_path: str,
    scored: DataFrame,
    features: list[tuple[str, str]],
    snapshot_date: dt.date,
    model: tuple[str, int, dict[str, str]],
    snapshot_col: str,
    scores: DataFrame | None = None,
) -> DriftResult:
    """Compare `scored` with the training window of `model` (name, version, tags), write the
    drift rows (replacing this snapshot and model version's), log them to MLflow.

    Without training lineage the check is skipped with a reason, never failing the scoring.
    """
    model_name, model_version, tags = model
    left_out = excluded([name for name, _ in features], monitor.exclude)
    features = [(name, kind) for name, kind in features if name not in left_out]
    numeric, _ = split_features(features)
    headline, headline_skipped = None, "the model version has no score_reference tag"
    if scores is not None and tags.get(tag.SCORE_REFERENCE):
        headline = score_psi(scores, tags[tag.SCORE_REFERENCE], PROBABILITY)
        headline_skipped = None if headline is not None else "no scores"
    try:
        if not features:
            raise LakemlError("every feature matches monitor.exclude")
        train = training_window(
            spark, tags, snapshot_col, [name for name, _ in features], monitor.reference
        )
        profile = quantile_edges(train, numeric, monitor.psi_bins).first()
        if profile is None or profile[ROWS] == 0:
            raise LakemlError(
                f"the training window ({tags[tag.TRAIN_SNAPSHOTS]}) has no rows in "
                f"{tags[tag.FEATURES_PATH]} at version {tags[tag.FEATURES_VERSION]}"
            )
    except LakemlError as exc:
        return DriftResult(
            skipped=str(exc),
            excluded=left_out,
            score_psi=headline,
            score_psi_skipped=headline_skipped,
        )

    stats = compute_drift(train, scored, features, monitor.psi_bins, profile)
    rows_df = drift_rows(
        stats,
        snapshot_date,
        model_name,
        model_version,
        monitor.psi_threshold,
        monitor.null_rate_threshold,
    )
    # One small row per feature: compute once, then write and report the same values.
    collected = rows_df.collect()
    # The same key as the scores table: this snapshot scored by this model version.
    condition = key_condition(snapshot_date, model_name, model_version)
    storage.replace_where(spark.createDataFrame(collected, rows_df.schema), drift_path, condition)
    rows = [r.asDict() for r in collected]
    run_id = log_to_mlflow(rows, monitor, snapshot_date, model_name, model_version, headline)
    return DriftResult(
        reference=monitor.reference,
        excluded=left_out,
        score_psi=headline,
        score_psi_skipped=headline_skipped,
        warnings=drift_warnings(rows, monitor.psi_threshold, monitor.null_rate_threshold),
        drifted_features=sorted(r["feature"] for r in rows if r["drifted"]),
        features_checked=len(rows),
        table_path=drift_path,
        table_version=storage.version(spark, drift_path),
        mlflow_run_id=run_id,
    )
