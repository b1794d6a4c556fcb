from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lakeml.core.config import load_config
from lakeml.core.errors import LakemlError
from lakeml.training.evaluate import (
    binary_metrics,
    calibration_table,
    choose_threshold,
    decile_table,
    precision_recall_f1,
    top_k,
)

# Five users, scores sorted high to low: churners are the 1st and 3rd.
Y = np.array([1, 0, 1, 0, 0])
P = np.array([0.9, 0.8, 0.7, 0.3, 0.1])


def test_precision_recall_f1_at_threshold_by_hand():
    # >= 0.5 flags 0.9, 0.8, 0.7: TP 2 (0.9, 0.7), FP 1 (0.8), FN 0.
    # precision 2/3, recall 2/2 = 1, F1 = 2 * (2/3 * 1) / (2/3 + 1) = (4/3) / (5/3) = 0.8
    got = precision_recall_f1(Y, P, 0.5)
    assert got == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8})


def test_threshold_is_inclusive():
    # >= 0.8 flags 0.9 and 0.8: TP 1, FP 1 -> precision 1/2, recall 1/2, F1 1/2
    assert precision_recall_f1(Y, P, 0.8) == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    )


def test_lift_in_top_k_by_hand():
    # base rate 2/5 = 0.4
    # top 20% = ceil(5 * 0.2) = 1 user (0.9, churner): precision 1, lift 1 / 0.4 = 2.5
    assert top_k(Y, P, 20) == pytest.approx({"precision": 1.0, "lift": 2.5})
    # top 40% = 2 users (0.9 churner, 0.8 not): precision 0.5, lift 0.5 / 0.4 = 1.25
    assert top_k(Y, P, 40) == pytest.approx({"precision": 0.5, "lift": 1.25})
    # top 1% still takes one user
    assert top_k(Y, P, 1) == pytest.approx({"precision": 1.0, "lift": 2.5})


def test_binary_metrics_by_hand():
    got = binary_metrics(Y, P, threshold=0.5, top_k_pcts=[20, 40])
    # Brier = mean((p - y)^2) = (0.01 + 0.64 + 0.09 + 0.09 + 0.01) / 5 = 0.84 / 5 = 0.168
    assert got["brier"] == pytest.approx(0.168)
    # ROC AUC: churner 0.9 outranks all 3 non-churners, 0.7 outranks 2 of 3 -> 5/6
    assert got["roc_auc"] == pytest.approx(5 / 6)
    # Average precision: recall steps of 1/2 at ranks 1 (precision 1) and 3 (precision 2/3)
    # -> 0.5 * 1 + 0.5 * 2/3 = 5/6
    assert got["pr_auc"] == pytest.approx(5 / 6)
    # log loss = -mean(log 0.9, log 0.2, log 0.7, log 0.7, log 0.9)
    expected_ll = -(2 * math.log(0.9) + math.log(0.2) + 2 * math.log(0.7)) / 5
    assert got["log_loss"] == pytest.approx(expected_ll)
    assert got["precision"] == pytest.approx(2 / 3)
    assert got["recall"] == pytest.approx(1.0)
    assert got["f1"] == pytest.approx(0.8)
    assert got["lift_at_20pct"] == pytest.approx(2.5)
    assert got["precision_at_40pct"] == pytest.approx(0.5)
    assert got["lift_at_40pct"] == pytest.approx(1.25)
    assert (got["rows"], got["positives"], got["base_rate"]) == (5, 2, pytest.approx(0.4))
    assert got["threshold"] == 0.5


def test_best_f1_threshold_is_chosen_on_the_given_scores():
    # Flagging >= t: t=0.9 -> F1 2/3; 0.8 -> 1/2; 0.7 -> P 2/3, R 1, F1 0.8 (best);
    # 0.3 -> P 1/2, R 1, F1 2/3; 0.1 -> P 2/5, R 1, F1 4/7.
    assert choose_threshold(Y, P, "best_f1", 10) == pytest.approx(0.7)


def test_top_k_threshold_is_the_score_of_the_last_user_in_the_top_k():
    # top 40% of 5 = 2 users: 0.9 and 0.8 -> threshold 0.8
    assert choose_threshold(Y, P, "top_k", 40) == pytest.approx(0.8)
    # top 10% of 5 = ceil(0.5) = 1 user -> 0.9
    assert choose_threshold(Y, P, "top_k", 10) == pytest.approx(0.9)


def test_unknown_threshold_policy_is_a_clear_error():
    conf = Path(__file__).resolve().parents[2] / "conf" / "local.yaml"
    with pytest.raises(LakemlError, match=r"train\.threshold\.policy.*'median'"):
        load_config(conf, ["train.threshold.policy=median"])


def test_decile_table_by_hand():
    # 10 users ranked by score, one per decile; churners at ranks 1, 2 and 5.
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 0])
    p = np.linspace(0.95, 0.05, 10)
    table = decile_table(y, p)
    assert table["decile"].tolist() == list(range(1, 11))
    assert table["rows"].tolist() == [1] * 10
    assert table["churners"].tolist() == [1, 1, 0, 0, 1, 0, 0, 0, 0, 0]
    # base rate 3/10: lift of a churner-only decile = 1 / 0.3
    assert table["lift"].iloc[0] == pytest.approx(1 / 0.3)
    # cumulative share of the 3 churners: 1/3, 2/3, 2/3, 2/3, 1, ...
    expected = [1 / 3, 2 / 3, 2 / 3, 2 / 3, 1]
    assert table["cumulative_capture"].tolist()[:5] == pytest.approx(expected)


def test_decile_table_groups_twenty_rows_in_pairs():
    y = np.array([1, 0] * 10)
    p = np.linspace(1.0, 0.0, 20)
    table = decile_table(y, p)
    assert table["rows"].tolist() == [2] * 10
    assert table["churn_rate"].tolist() == [0.5] * 10


def test_calibration_table_by_hand():
    # Bins of width 0.1: 0.05 and 0.08 -> bin 0 (mean 0.065, 1 of 2 churned);
    # 0.95 and 1.0 -> bin 9 (1.0 is clipped into the last bin; mean 0.975, 2 of 2).
    y = np.array([0, 1, 1, 1])
    p = np.array([0.05, 0.08, 0.95, 1.0])
    got = calibration_table(y, p)
    expected = pd.DataFrame(
        {
            "bin": [0, 9],
            "lower": [0.0, 0.9],
            "upper": [0.1, 1.0],
            "rows": [2, 2],
            "mean_predicted": [0.065, 0.975],
            "observed_rate": [0.5, 1.0],
        }
    )
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
