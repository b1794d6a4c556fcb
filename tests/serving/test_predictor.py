"""Row checks and encoding of the live predictor, by hand (no model needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lakeml.scoring import native
from lakeml.serving.predictor import NativeModel, slot_columns, text

MODEL = NativeModel(
    name="m",
    version=1,
    booster=None,
    encoding={},
    features={"songs_7d": "long", "trend": "double", "gender": "string", "paid": "boolean"},
    threshold=0.5,
    keys=("user_id", "snapshot_date"),
)


def test_a_good_row_passes_and_nulls_are_missing_values():
    good = {"user_id": "u1", "songs_7d": 3, "trend": 0.5, "gender": "F", "paid": True}
    assert MODEL.check([good, {**good, "trend": None, "gender": None}]) == []
    assert MODEL.check([{**good, "trend": 2}]) == []  # an integer is a fine double


def test_every_problem_of_every_row_is_named():
    rows = [
        {"songs_7d": 2.5, "trend": "x", "gender": "F", "paid": 1},
        {"songs_7d": True, "trend": 1.0, "paid": False, "extra": 1},
        ["not", "an", "object"],
    ]
    found = [(e.row, e.field, e.problem) for e in MODEL.check(rows)]
    assert found == [
        (0, "songs_7d", "expected long, got 2.5"),
        (0, "trend", "expected double, got 'x'"),
        (0, "paid", "expected boolean, got 1"),
        (1, "songs_7d", "expected long, got True"),
        (1, "gender", "field required"),
        (1, "extra", "not an input of the model"),
        (2, "", "each row must be a JSON object"),
    ]


def test_slot_groups_and_values_as_the_scores_table_writes_them():
    enc = {
        "slots": [
            {"column": "songs_7d", "kind": "numeric"},
            {"column": "gender", "kind": "categorical"},
        ],
        "labels": {"gender": ["F", "M"]},
        "drop_last": True,
    }
    assert slot_columns(enc) == (["songs_7d", "gender"], [1, 2])
    assert slot_columns({**enc, "drop_last": False})[1] == [1, 3]
    assert [text(v) for v in (3, 2.5, "F", True, None, float("nan"))] == [
        "3", "2.5", "F", "true", None, None
    ]  # fmt: skip


def test_rows_as_dicts_encode_as_the_dataframe_path_does():
    enc = {
        "slots": [
            {"column": "songs_7d", "kind": "numeric"},
            {"column": "gender", "kind": "categorical"},
            {"column": "trend", "kind": "numeric"},
        ],
        "labels": {"gender": ["F", "M", "X"]},
        "drop_last": True,
    }
    rows = [
        {"songs_7d": 3, "gender": "M", "trend": 0.25},
        {"songs_7d": None, "gender": "unseen", "trend": -1},
        {"songs_7d": 7, "gender": None, "trend": None},
        {"songs_7d": 0, "gender": "X", "trend": 2.5},
    ]
    by_records = native.encode_records(rows, enc)
    np.testing.assert_array_equal(by_records, native.encode(pd.DataFrame(rows), enc))
    # By hand: [songs, F, M, X, trend]; unseen and missing categories are all zeros.
    nan = np.nan
    np.testing.assert_array_equal(
        by_records,
        np.array(
            [[3, 0, 1, 0, 0.25], [nan, 0, 0, 0, -1], [7, 0, 0, 0, nan], [0, 0, 0, 1, 2.5]],
            dtype=np.float32,
        ),
    )
