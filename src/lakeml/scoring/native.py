"""An xgboost champion without a JVM: its booster plus the encoding Spark applied before it.

The Spark pipeline of model type `xgboost` is StringIndexer + OneHotEncoder for categoricals,
numbers as they are (null -> NaN), a VectorAssembler, then the booster. `encoding` reads what
those fitted stages learnt (each categorical's labels, the slot order) into plain JSON, and
`encode` rebuilds the booster's input matrix from pandas rows with numpy alone, so a
single-row prediction needs neither Spark nor a JVM. Training checks that the two paths
agree on the whole test window (`parity`) and records the largest difference on the version.

Imports only numpy and pandas (and xgboost when predicting): usable by a service.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

ENCODING_VERSION = 1


def encoding(model: Any) -> dict[str, Any]:
    """The JSON-ready encoding of a fitted xgboost pipeline's preprocessing stages."""
    stages = model.stages
    assembler = next(s for s in stages if type(s).__name__ == "VectorAssembler")
    indexers = [s for s in stages if type(s).__name__ == "StringIndexerModel"]
    encoders = [s for s in stages if type(s).__name__ == "OneHotEncoderModel"]
    labels: dict[str, list[str]] = {}
    for indexer in indexers:
        for column, values in zip(indexer.getInputCols(), indexer.labelsArray, strict=True):
            labels[column] = list(values)
    drop_last = all(e.getDropLast() for e in encoders)
    index_suffix = {o: i for i, o in zip(*_io(indexers), strict=True)}
    onehot_source = {o: index_suffix[i] for i, o in zip(*_io(encoders), strict=True)}
    slots: list[dict[str, Any]] = []
    for name in assembler.getInputCols():
        if name in onehot_source:
            slots.append({"column": onehot_source[name], "kind": "categorical"})
        else:
            slots.append({"column": name, "kind": "numeric"})
    return {
        "version": ENCODING_VERSION,
        "slots": slots,
        "labels": labels,
        "drop_last": drop_last,
    }


def _io(stages: list[Any]) -> tuple[list[str], list[str]]:
    inputs: list[str] = []
    outputs: list[str] = []
    for s in stages:
        inputs += list(s.getInputCols())
        outputs += list(s.getOutputCols())
    return inputs, outputs


def slot_width(slot: dict[str, Any], enc: dict[str, Any]) -> int:
    """How many booster inputs a slot takes: 1 for a number; a categorical's labels, plus
    one without drop_last (the unseen and null index)."""
    if slot["kind"] == "numeric":
        return 1
    return len(enc["labels"][slot["column"]]) + (0 if enc["drop_last"] else 1)


def encode(frame: pd.DataFrame, enc: dict[str, Any]) -> np.ndarray:
    """The booster's dense input matrix for `frame` (float32, NaN = missing).

    A categorical with k training labels gets k slots (the index kept for nulls and unseen
    values is the one-hot's dropped last slot, i.e. all zeros), or k + 1 without drop_last.
    """
    columns: list[np.ndarray] = []
    n = len(frame)
    for slot in enc["slots"]:
        values = frame[slot["column"]]
        if slot["kind"] == "numeric":
            numbers = pd.to_numeric(values, errors="coerce").astype("float64")
            columns.append(numbers.to_numpy(dtype=np.float64, na_value=np.nan).reshape(n, 1))
            continue
        labels = enc["labels"][slot["column"]]
        lookup = {label: i for i, label in enumerate(labels)}
        index = np.array(
            [lookup.get(v, len(labels)) if isinstance(v, str) else len(labels) for v in values]
        )
        width = slot_width(slot, enc)
        onehot = np.zeros((n, width), dtype=np.float64)
        hit = index < width
        onehot[np.arange(n)[hit], index[hit]] = 1.0
        columns.append(onehot)
    matrix = np.hstack(columns) if columns else np.zeros((n, 0))
    return matrix.astype(np.float32)


def encode_records(records: list[dict[str, Any]], enc: dict[str, Any]) -> np.ndarray:
    """`encode` for rows as dicts of checked JSON values (numbers, strings, booleans, None),
    without building a DataFrame: what a service does for one or a few rows."""
    n = len(records)
    widths = [slot_width(s, enc) for s in enc["slots"]]
    matrix = np.zeros((n, sum(widths)), dtype=np.float32)
    start = 0
    for slot, width in zip(enc["slots"], widths, strict=True):
        name = slot["column"]
        if slot["kind"] == "numeric":
            for i, r in enumerate(records):
                v = r.get(name)
                matrix[i, start] = np.nan if v is None else float(v)
        else:
            lookup = {label: j for j, label in enumerate(enc["labels"][name])}
            for i, r in enumerate(records):
                v = r.get(name)
                j = lookup.get(v, width) if isinstance(v, str) else width
                if j < width:
                    matrix[i, start + j] = 1.0
        start += width
    return matrix


def probabilities(booster: Any, matrix: np.ndarray) -> np.ndarray:
    """P(churn) per row, with the rounds the Spark model predicts with."""
    best = booster.attributes().get("best_iteration")
    rounds = (0, int(best) + 1) if best is not None else (0, 0)
    margin = booster.inplace_predict(matrix, iteration_range=rounds, predict_type="margin")
    return 1.0 / (1.0 + np.exp(-np.asarray(margin, dtype=np.float64)))


def parity(booster: Any, enc: dict[str, Any], frame: pd.DataFrame, spark_p: np.ndarray) -> float:
    """Largest |native - Spark| probability over the rows of `frame`."""
    native = probabilities(booster, encode(frame, enc))
    return float(np.max(np.abs(native - np.asarray(spark_p, dtype=np.float64)), initial=0.0))
