"""PNG charts of a model on its test window: ROC, PR, calibration, deciles, feature weights.

Figures are built with matplotlib's object API on the Agg canvas (no pyplot, no global
backend, no display), so they render the same on a laptop, a server or a Spark driver.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn import metrics as skm


def _save(fig: Figure, path: Path, left: float = 0.13, right: float = 0.95) -> Path:
    # Fixed margins: tight_layout measures every label first, which doubles the cost.
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=left, right=right, bottom=0.13, top=0.9)
    fig.savefig(path, dpi=80)
    return path


def roc_png(y: np.ndarray, p: np.ndarray, title: str, path: Path) -> Path:
    fpr, tpr, _ = skm.roc_curve(y, p)
    fig = Figure(figsize=(5, 4))
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, label=f"AUC {skm.roc_auc_score(y, p):.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC: {title}")
    ax.legend(loc="lower right")
    return _save(fig, path)


def pr_png(y: np.ndarray, p: np.ndarray, title: str, path: Path) -> Path:
    precision, recall, _ = skm.precision_recall_curve(y, p)
    fig = Figure(figsize=(5, 4))
    ax = fig.add_subplot()
    ax.step(recall, precision, where="post", label=f"AP {skm.average_precision_score(y, p):.3f}")
    ax.axhline(float(np.mean(y)), linestyle="--", color="grey", label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title=f"Precision-recall: {title}")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper right")
    return _save(fig, path)


def calibration_png(table: pd.DataFrame, title: str, path: Path) -> Path:
    fig = Figure(figsize=(5, 4))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    ax.plot(table["mean_predicted"], table["observed_rate"], marker="o", label="model")
    ax.set(xlabel="mean predicted P(churn)", ylabel="observed churn rate")
    ax.set(title=f"Calibration: {title}", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left")
    return _save(fig, path)


def deciles_png(table: pd.DataFrame, title: str, path: Path) -> Path:
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax.bar(table["decile"], table["lift"], color="tab:blue", label="lift")
    ax.axhline(1.0, linestyle="--", color="grey")
    ax.set(xlabel="risk decile (1 = highest scores)", ylabel="lift", title=f"Lift: {title}")
    ax2 = ax.twinx()
    ax2.plot(table["decile"], table["cumulative_capture"], color="tab:orange", marker="o")
    ax2.set(ylabel="cumulative share of churners", ylim=(0, 1.02))
    return _save(fig, path, right=0.87)


def feature_weights_png(table: pd.DataFrame, title: str, path: Path, top: int = 20) -> Path:
    shown = table.head(top).iloc[::-1]
    kind = str(table["kind"].iloc[0]) if len(table) else "weight"
    fig = Figure(figsize=(7, max(3, 0.3 * len(shown) + 1)))
    ax = fig.add_subplot()
    ax.barh(shown["feature"], shown["value"], color="tab:green")
    by = kind if kind.startswith("mean |") else f"|{kind}|"
    ax.set(xlabel=kind, title=f"Top {len(shown)} features by {by}: {title}")
    return _save(fig, path, left=0.35)
