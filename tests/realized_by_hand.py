"""Realized-performance metrics written out from their definitions with pandas and numpy, to
check lakeml's (which uses scikit-learn) against: a second method, not the same calls."""

from __future__ import annotations

import numpy as np
import pandas as pd


def expected(
    frame: pd.DataFrame, top_k_pct: float = 10.0, bins: int = 10, entity: str = "user_id"
) -> dict[str, float]:
    """Each metric by its definition, on the joined rows (ties in probability ranked by id)."""
    y, p = frame["churned"].to_numpy(), frame["churn_probability"].to_numpy()
    pos, neg = p[y == 1], p[y == 0]
    order = frame.sort_values(["churn_probability", entity], ascending=[False, True])
    ranked = order["churned"].to_numpy()
    # Average precision over the distinct thresholds: precision there times the recall gained.
    steps = order.groupby("churn_probability", sort=False)["churned"].agg(["sum", "size"])
    precision_at_step = steps["sum"].cumsum() / steps["size"].cumsum()
    pr_auc = (precision_at_step * steps["sum"] / y.sum()).sum()
    base = y.mean()
    n_top = int(np.ceil(len(y) * top_k_pct / 100))
    bin_of = pd.Series(np.minimum((p * bins).astype(int), bins - 1))
    per_bin = pd.DataFrame({"b": bin_of, "p": p, "y": y}).groupby("b").agg(["mean", "size"])
    ece = (
        (per_bin[("p", "size")] / len(y)) * (per_bin[("p", "mean")] - per_bin[("y", "mean")]).abs()
    ).sum()
    return {
        "rows": len(y),
        "positives": int(y.sum()),
        # The share of (churner, stayer) pairs ranked right, a tie counting half.
        "roc_auc": ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean(),
        "pr_auc": pr_auc,
        "base_rate": base,
        "pr_auc_lift": pr_auc / base,
        "precision_at_top_k": ranked[:n_top].mean(),
        "lift_at_top_k": ranked[:n_top].mean() / base,
        "capture_at_threshold": frame.loc[y == 1, "predicted_churn"].mean(),
        "calibration_error": ece,
    }
