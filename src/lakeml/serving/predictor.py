"""Live predictions with a champion's native artifact: no Spark, no JVM.

An xgboost version carries its booster (`mlflow.xgboost`) and the encoding the Spark stages
applied before it (`lakeml.scoring.native`); rows arrive as JSON objects, are checked against
the version's signature, encoded with numpy and predicted in one call. Reasons are TreeSHAP
contributions from the booster, summed back to the raw columns, as in the scores table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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

    def predict(self, rows: list[dict[str, Any]], top_k: int) -> list[dict[str, Any]]:
        """Probability, label at the version's threshold and top-k reasons per checked row."""
        matrix = native.encode_records(rows, self.encoding)
        p = native.probabilities(self.booster, matrix)
        reasons = self.reasons(rows, matrix, top_k) if top_k > 0 else [[] for _ in rows]
        return [
            {
                "churn_probability": float(p[i]),
                "predicted_churn": int(p[i] >= self.threshold),
                "reasons": reasons[i],
            }
            for i in range(len(rows))
        ]

    def reasons(self, rows: list[dict], matrix: np.ndarray, top_k: int) -> list[list[dict]]:
        """Per row, the raw columns with the largest positive TreeSHAP contribution."""
        import xgboost

        best = self.booster.attributes().get("best_iteration")
        rounds = (0, int(best) + 1) if best is not None else (0, 0)
        contrib = self.booster.predict(
            xgboost.DMatrix(matrix, missing=np.nan), pred_contribs=True, iteration_range=rounds
        )[:, :-1]  # the last column is the bias
        columns, widths = slot_columns(self.encoding)
        per_column = np.add.reduceat(contrib, np.cumsum([0, *widths[:-1]]), axis=1)
        out = []
        for i, row in enumerate(rows):
            order = np.argsort(-per_column[i], kind="stable")
            top = [j for j in order if per_column[i, j] > 0][:top_k]
            out.append(
                [
                    {
                        "feature": columns[j],
                        "value": text(row.get(columns[j])),
                        "contribution": float(per_column[i, j]),
                    }
                    for j in top
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
