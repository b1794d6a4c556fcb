"""Metrics of a churn model on one window: ranking, calibration, threshold and top-k tables.

Everything here works on a small pandas frame of (label, probability), one row per entity
and snapshot of the window: a few thousand rows at most, so it is collected from Spark
and scored with scikit-learn, which has exact, well-tested versions of these metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from sklearn import metrics as skm

LABEL, SCORE = "label", "score"


@dataclass
class Outcome:
    """One trained model (a Spark model type or the baseline) and its test-window results."""

    name: str
    params: dict[str, Any]
    validation_metric: float | None
    threshold: float
    test: dict[str, float]
    y: np.ndarray
    p: np.ndarray
    model: Any
    weights: pd.DataFrame
    grid_results: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    fit_window: str = "train"  # the windows the model was fit on
    fit_rows: int = 0  # rows it was fit on (refit and baseline; 0 when not recorded)
    # Mean |contribution| per raw column on the test window (models with exact reasons).
    drivers: pd.DataFrame | None = None


# Config metric names (Spark evaluator names) -> keys of `binary_metrics`.
METRIC_KEYS = {"areaUnderPR": "pr_auc", "areaUnderROC": "roc_auc"}


def collect_scores(predictions: DataFrame, label_col: str) -> pd.DataFrame:
    """(label, score) of scored rows as pandas; score = P(churn), element 1 of `probability`."""
    scores = predictions.select(
        F.col(label_col).cast("int").alias(LABEL),
        vector_to_array(F.col("probability")).getItem(1).alias(SCORE),
    )
    return scores.toPandas()


def precision_recall_f1(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of `score >= threshold` as the predicted churners."""
    predicted = (np.asarray(p) >= threshold).astype(int)
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        y, predicted, average="binary", zero_division=0
    )
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


def top_k(y: np.ndarray, p: np.ndarray, pct: float) -> dict[str, float]:
    """Precision and lift among the `pct`% highest scores (at least one row).

    Lift = churn rate in the top k% / churn rate overall: how much better than random
    a retention campaign reaching k% of users would target.
    """
    y, p = np.asarray(y), np.asarray(p)
    n_top = max(1, math.ceil(len(y) * pct / 100))
    # Stable sort: ties keep their input order, so the result does not depend on chance.
    top = np.argsort(-p, kind="stable")[:n_top]
    precision = float(y[top].mean())
    base_rate = float(y.mean())
    return {"precision": precision, "lift": precision / base_rate if base_rate else float("nan")}


def pct_name(pct: float) -> str:
    """5.0 -> '5pct', 2.5 -> '2.5pct' (metric-name friendly)."""
    return f"{pct:g}pct"


def binary_metrics(
    y: np.ndarray, p: np.ndarray, threshold: float, top_k_pcts: list[float]
) -> dict[str, float]:
    """All scalar test metrics: ROC AUC, PR AUC, log loss, Brier, P/R/F1, top-k precision/lift.

    PR AUC is average precision (the step-wise area scikit-learn recommends), which is a
    little lower than Spark's trapezoidal areaUnderPR on the same scores.
    """
    y, p = np.asarray(y).astype(int), np.asarray(p).astype(float)
    out = {
        "rows": float(len(y)),
        "positives": float(y.sum()),
        "base_rate": float(y.mean()),
        "roc_auc": float(skm.roc_auc_score(y, p)),
        "pr_auc": float(skm.average_precision_score(y, p)),
        "log_loss": float(skm.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, p)),
        "threshold": float(threshold),
        **precision_recall_f1(y, p, threshold),
    }
    for pct in top_k_pcts:
        k = top_k(y, p, pct)
        out[f"precision_at_{pct_name(pct)}"] = k["precision"]
        out[f"lift_at_{pct_name(pct)}"] = k["lift"]
    return out


def choose_threshold(y: np.ndarray, p: np.ndarray, policy: str, top_k_pct: float) -> float:
    """The decision threshold from VALIDATION scores (never test), by policy.

    best_f1: the score threshold with the highest F1; top_k: the score of the last user in
    the top `top_k_pct`% (a campaign with a fixed budget).
    """
    y, p = np.asarray(y).astype(int), np.asarray(p).astype(float)
    if policy == "top_k":
        n_top = max(1, math.ceil(len(p) * top_k_pct / 100))
        return float(np.sort(p)[::-1][n_top - 1])
    # best_f1 (the config allows only these two policies)
    precision, recall, thresholds = skm.precision_recall_curve(y, p)
    # The last (precision 1, recall 0) point has no threshold.
    denom = precision[:-1] + recall[:-1]
    f1 = np.divide(
        2 * precision[:-1] * recall[:-1], denom, out=np.zeros_like(denom), where=denom > 0
    )
    return float(thresholds[int(np.argmax(f1))])


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Mean predicted vs observed churn rate in equal-width score bins (empty bins left out).

    With balanced class weights the scores over-state churn: that is expected, and this
    table shows by how much.
    """
    frame = pd.DataFrame({LABEL: np.asarray(y).astype(int), SCORE: np.asarray(p, dtype=float)})
    frame["bin"] = np.minimum((frame[SCORE] * bins).astype(int), bins - 1)
    table = (
        frame.groupby("bin")
        .agg(rows=(LABEL, "size"), mean_predicted=(SCORE, "mean"), observed_rate=(LABEL, "mean"))
        .reset_index()
    )
    table.insert(1, "lower", table["bin"] / bins)
    table.insert(2, "upper", (table["bin"] + 1) / bins)
    return table


def decile_table(y: np.ndarray, p: np.ndarray, groups: int = 10) -> pd.DataFrame:
    """Rows ranked by score, cut into `groups` equal groups (1 = highest risk).

    Per group: size, score range, churners, churn rate, lift over the base rate and the
    cumulative share of all churners captured down to that group.
    """
    frame = pd.DataFrame({LABEL: np.asarray(y).astype(int), SCORE: np.asarray(p, dtype=float)})
    frame = frame.sort_values(SCORE, ascending=False, kind="stable").reset_index(drop=True)
    frame["decile"] = (np.arange(len(frame)) * groups // max(len(frame), 1)) + 1
    table = (
        frame.groupby("decile")
        .agg(
            rows=(LABEL, "size"),
            min_score=(SCORE, "min"),
            max_score=(SCORE, "max"),
            mean_score=(SCORE, "mean"),
            churners=(LABEL, "sum"),
        )
        .reset_index()
    )
    base_rate = frame[LABEL].mean()
    total = max(int(frame[LABEL].sum()), 1)
    table["churn_rate"] = table["churners"] / table["rows"]
    table["lift"] = table["churn_rate"] / base_rate if base_rate else float("nan")
    table["cumulative_capture"] = table["churners"].cumsum() / total
    return table
