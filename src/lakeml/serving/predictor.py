"""Live predictions with a champion's native artifact: no Spark, no JVM.

An xgboost version carries its booster (`mlflow.xgboost`) and the encoding the Spark stages
applied before it (`lakeml.scoring.native`); rows arrive as JSON objects, are checked against
the version's signature, encoded with numpy and predicted in one call. Reasons are TreeSHAP
contributions from the booster, summed back to the raw columns, as in the scores table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from lakeml.scoring import native
from lakeml.tracking import tags

# Signature column types and the JSON values each accepts (bool is not a number here).
_NUMBER = (int, float)
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "long": (int,),
    "integer": (int,),
    "double": _NUMBER,
    "float": _NUMBER,
    "string": (str,),
    "boolean": (bool,),
}


class NoNativeModel(Exception):
    """The version has no artifact that predicts without a JVM."""


@dataclass(frozen=True)
class FieldError:
    row: int
    field: str
    problem: str

    def as_dict(self) -> dict[str, Any]:
        return {"loc": ["rows", self.row, self.field], "msg": self.problem}


@dataclass(frozen=True)
class NativeModel:
    """One registered version, ready to predict: booster, encoding, input columns, threshold."""

    name: str
    version: int
    booster: Any
    encoding: dict[str, Any]
    features: dict[str, str]  # column -> signature type, in signature order
    threshold: float
    keys: tuple[str, ...]  # entity and snapshot columns: accepted, not used

    def check(self, rows: list[Any]) -> list[FieldError]:
        """Every problem with every row: not an object, a missing, unknown or mistyped field."""
        errors: list[FieldError] = []
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                errors.append(FieldError(i, "", "each row must be a JSON object"))
                continue
            for name, kind in self.features.items():
                if name not in row:
                    errors.append(FieldError(i, name, "field required"))
                    continue
                value = row[name]
                if value is None:
                    continue  # missing values are left to the model, as in batch scoring
                ok = isinstance(value, JSON_TYPES[kind]) and not (
                    kind != "boolean" and isinstance(value, bool)
                )
                if ok and isinstance(value, float) and not math.isfinite(value):
                    ok = False
                if not ok:
                    errors.append(FieldError(i, name, f"expected {kind}, got {value!r}"[:200]))
            for name in row:
                if name not in self.features and name not in self.keys:
                    errors.append(FieldError(i, name, "not an input of the model"))
        return errors

    @cached_property
    def rounds(self) -> tuple[int, int]:
        """The boosting rounds the Spark model predicts with (all, or up to the best)."""
        best = self.booster.attributes().get("best_iteration")
        return (0, int(best) + 1) if best is not None else (0, 0)

    @cached_property
    def groups(self) -> tuple[list[str], np.ndarray]:
        """The raw column of each group of booster slots, and the group's first slot."""
        columns, widths = slot_columns(self.encoding)
        return columns, np.cumsum([0, *widths[:-1]])

    def predict(self, rows: list[dict[str, Any]], top_k: int) -> list[dict[str, Any]]:
        """Probability, label at the version's threshold and top-k reasons per checked row.

        Each row's answer is the same whether it is predicted alone or with others (the
        booster scores rows independently, one thread): the service batches requests.
        """
        matrix = native.encode_records(rows, self.encoding)
        if top_k > 0:
            import xgboost

            # One thread: the default builds the matrix with a thread team, which costs
            # milliseconds per call on a busy machine (a row takes microseconds).
            data = xgboost.DMatrix(matrix, missing=np.nan, nthread=1)
            # The margin equals `native.probabilities`' (inplace_predict) bit for bit.
            margin = self.booster.predict(data, output_margin=True, iteration_range=self.rounds)
            p = 1.0 / (1.0 + np.exp(-np.asarray(margin, dtype=np.float64)))
            reasons = self.reasons(rows, data, top_k)
        else:
            p = native.probabilities(self.booster, matrix)
            reasons = [[] for _ in rows]
        threshold = self.threshold
        return [
            {"churn_probability": pi, "predicted_churn": int(pi >= threshold), "reasons": r}
            for pi, r in zip(p.tolist(), reasons, strict=True)
        ]

    def reasons(self, rows: list[dict], data: Any, top_k: int) -> list[list[dict]]:
        """Per row, the raw columns with the largest positive TreeSHAP contribution;
        `data` is the rows' DMatrix."""
        contrib = self.booster.predict(data, pred_contribs=True, iteration_range=self.rounds)
        columns, starts = self.groups
        # The last column is the bias.
        per_column = np.add.reduceat(contrib[:, :-1], starts, axis=1)
        order = np.argsort(-per_column, axis=1, kind="stable")[:, :top_k]
        best = np.take_along_axis(per_column, order, axis=1)
        out = []
        for row, js, values in zip(rows, order.tolist(), best.tolist(), strict=True):
            out.append(
                [
                    {"feature": columns[j], "value": text(row.get(columns[j])), "contribution": v}
                    for j, v in zip(js, values, strict=True)
                    if v > 0
                ]
            )
        return out


def slot_columns(enc: dict[str, Any]) -> tuple[list[str], list[int]]:
    """The raw column of each group of booster slots, and each group's width."""
    slots = enc["slots"]
    return [s["column"] for s in slots], [native.slot_width(s, enc) for s in slots]


def text(value: Any) -> str | None:
    """A value as the scores table writes it (Spark's cast to string)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load(client: Any, name: str, version: int) -> NativeModel:
    """The version's native model; NoNativeModel when it was logged without one."""
    import mlflow.models
    import mlflow.xgboost

    mv = client.get_model_version(name, str(version))
    t = mv.tags
    if not t.get(tags.NATIVE_MODEL_URI) or not t.get(tags.NATIVE_ENCODING):
        raise NoNativeModel(
            f"{name} v{version} ({t.get(tags.MODEL_TYPE, 'unknown type')}) has no native "
            "artifact; live predictions need an xgboost champion (scores stay available)"
        )
    booster = mlflow.xgboost.load_model(t[tags.NATIVE_MODEL_URI])
    # A request is a row or a few: one thread each is faster than a thread team, and the
    # service's concurrency comes from serving requests side by side.
    booster.set_param({"nthread": 1})
    enc = mlflow.artifacts.load_dict(t[tags.NATIVE_ENCODING])
    info = mlflow.models.get_model_info(f"models:/{name}/{version}")
    features = {s.name: getattr(s.type, "name", str(s.type)) for s in info.signature.inputs.inputs}
    unsupported = {c: k for c, k in features.items() if k not in JSON_TYPES}
    if unsupported:
        raise NoNativeModel(
            f"{name} v{version} has input types the service cannot take: {unsupported}"
        )
    keys = tuple(k for k in (t.get(tags.ENTITY_COL), t.get(tags.SNAPSHOT_COL)) if k)
    return NativeModel(name, int(version), booster, enc, features, tags.threshold(t, 0.5), keys)
