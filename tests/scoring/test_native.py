"""The xgboost booster's input rebuilt without Spark: hand-checked encoding of a few rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lakeml.scoring import native

ENC = {
    "version": 1,
    "slots": [
        {"column": "tenure", "kind": "numeric"},
        {"column": "plan", "kind": "categorical"},
        {"column": "calls", "kind": "numeric"},
    ],
    "labels": {"plan": ["monthly", "yearly"]},
    "drop_last": True,
}


def test_rows_encode_as_the_spark_pipeline_would_by_hand() -> None:
    frame = pd.DataFrame(
        {
            "tenure": [1, None, 30],
            "plan": ["yearly", None, "weekly"],  # a null and a value unseen in training
            "calls": [2.5, 0.0, None],
        }
    )
    got = native.encode(frame, ENC)
    nan = math.nan
    # tenure | plan=monthly, plan=yearly (the unseen/null index is the dropped slot) | calls
    expected = np.array(
        [[1, 0, 1, 2.5], [nan, 0, 0, 0.0], [30, 0, 0, nan]],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(got, expected)  # NaN equals NaN here


def test_without_drop_last_the_unseen_index_has_its_own_slot() -> None:
    frame = pd.DataFrame({"tenure": [1.0], "plan": ["weekly"], "calls": [0.0]})
    got = native.encode(frame, {**ENC, "drop_last": False})
    np.testing.assert_array_equal(got, np.array([[1, 0, 0, 1, 0]], dtype=np.float32))
