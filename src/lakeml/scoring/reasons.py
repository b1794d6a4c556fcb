"""Reason codes: per scored entity, the features that raise its churn risk most.

A contribution is a feature's share of the row's log-odds margin, relative to the model's
base margin, so a row's contributions plus the base add up to its margin:
- xgboost: TreeSHAP, exact, from the booster itself (`pred_contrib_col`);
- logistic regression: coefficient x (standardised value - its training mean), the exact
  SHAP value of a linear model (the scaler's mean and std are the fitted ones);
- random forest and Spark GBT: none (no reasons column values; lakeml does not run SHAP
  over Spark's trees).
Assembler slots are summed back to the raw column they came from (a categorical's one-hot
slots, an imputed number), so a reason names `contract`, never `features[17]`. Everything
here is built-in Column functions over the transformed rows: no UDF, no collect.
"""

from __future__ import annotations

import pandas as pd
from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

REASONS = "reasons"
REASON_TYPE = T.ArrayType(
    T.StructType(
        [
            T.StructField("feature", T.StringType()),
            T.StructField("value", T.StringType()),
            T.StructField("contribution", T.DoubleType()),
        ]
    )
)
CONTRIB = "_lakeml_contrib"
# Pipeline column and slot-name conventions of lakeml.training.models (read, not imported:
# scoring must not need the training package).
ASSEMBLED, SCALED = "_lakeml_assembled", "_lakeml_features"
SLOT_SUFFIXES = ("__imputed", "__onehot")


def raw_column(slot: str) -> str:
    """The input column an assembler slot came from: 'songs_7d__imputed' -> 'songs_7d',
    'gender__onehot_M' -> 'gender', 'songs_7d' -> 'songs_7d'."""
    for suffix in SLOT_SUFFIXES:
        cut = slot.find(suffix)
        if cut > 0:
            return slot[:cut]
    return slot


def slot_names(transformed: DataFrame) -> list[str]:
    """The assembler's slot names, in vector order, from the column's ML metadata."""
    attrs = transformed.schema[ASSEMBLED].metadata.get("ml_attr", {}).get("attrs", {})
    slots = {a["idx"]: a["name"] for group in attrs.values() for a in group}
    return [slots.get(i, f"slot_{i}") for i in range(len(slots))]


def prepare(model: PipelineModel) -> bool:
    """Make the model also output per-slot contributions, where it can; True if it does."""
    last = model.stages[-1]
    if hasattr(last, "get_booster"):  # xgboost.spark
        last.set(last.getParam("pred_contrib_col"), CONTRIB)
        return True
    return hasattr(last, "coefficients") and any(
        hasattr(stage, "std") and hasattr(stage, "mean") for stage in model.stages
    )


def slot_contributions(model: PipelineModel, transformed: DataFrame) -> Column | None:
    """An array<double> of each slot's contribution to the margin (None: not supported)."""
    last = model.stages[-1]
    if hasattr(last, "get_booster"):
        # xgboost: one array per output group (one for binary), the bias last (dropped).
        per_slot = F.col(CONTRIB)[0]
        return F.slice(per_slot, 1, F.size(per_slot) - 1)
    if not hasattr(last, "coefficients"):
        return None
    scalers = [s for s in model.stages if hasattr(s, "std") and hasattr(s, "mean")]
    if not scalers:
        return None
    scaler = scalers[-1]
    coef = last.coefficients.toArray()
    mean, std = scaler.mean.toArray(), scaler.std.toArray()
    scaled = vector_to_array(F.col(SCALED))
    terms = []
    for i, (b, m, s) in enumerate(zip(coef, mean, std, strict=True)):
        # The scaler outputs 0 for a constant feature (std 0): it contributes nothing.
        centre = float(m / s) if s > 0 else 0.0
        terms.append(F.lit(float(b)) * (scaled[i] - F.lit(centre)) if s > 0 else F.lit(0.0))
    return F.array(*terms)


def grouped(contributions: Column, slots: list[str]) -> dict[str, Column]:
    """Per raw column (in first-slot order), the sum of its slots' contributions."""
    groups: dict[str, list[int]] = {}
    for i, slot in enumerate(slots):
        groups.setdefault(raw_column(slot), []).append(i)
    out: dict[str, Column] = {}
    for column, indexes in groups.items():
        parts = [contributions[i] for i in indexes]
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        out[column] = total
    return out


def top_reasons(by_column: dict[str, Column], top_k: int) -> Column:
    """The `top_k` columns with the largest positive contribution, largest first, each as
    (feature, value as text, contribution); fewer when fewer raise the risk."""
    entries = F.array(
        *[
            F.struct(
                F.lit(name).alias("feature"),
                F.col(name).cast("string").alias("value"),
                contribution.cast("double").alias("contribution"),
            )
            for name, contribution in by_column.items()
        ]
    )
    raising = F.filter(entries, lambda e: e["contribution"] > 0)
    ordered = F.array_sort(
        raising,
        lambda a, b: (
            F.when(a["contribution"] > b["contribution"], -1)
            .when(a["contribution"] < b["contribution"], 1)
            .otherwise(0)
        ),
    )
    return F.slice(ordered, 1, top_k)


def reasons_column(model: PipelineModel, transformed: DataFrame, top_k: int) -> Column:
    """The `reasons` column for rows the (prepared) model transformed; null where the model
    type has no exact contributions or `top_k` is 0."""
    contributions = slot_contributions(model, transformed) if top_k > 0 else None
    if contributions is None:
        return F.lit(None).cast(REASON_TYPE)
    by_column = grouped(contributions, slot_names(transformed))
    return top_reasons(by_column, top_k).cast(REASON_TYPE)


def all_contributions(model: PipelineModel, transformed: DataFrame) -> dict[str, Column] | None:
    """Every raw column's contribution (for checks and the global summary)."""
    contributions = slot_contributions(model, transformed)
    if contributions is None:
        return None
    return grouped(contributions, slot_names(transformed))


def global_drivers(model: PipelineModel, rows: DataFrame, top: int = 20) -> pd.DataFrame | None:
    """Mean |contribution| per raw column over `rows`, largest first (at most `top`), as
    (feature, value, kind); None when the model type has no exact contributions. The model
    itself is left as it was (a copy of its last stage is prepared)."""
    explained = PipelineModel(stages=[*model.stages[:-1], model.stages[-1].copy()])
    if not prepare(explained):
        return None
    out = explained.transform(rows)
    by_column = all_contributions(explained, out)
    if by_column is None:
        return None
    names = list(by_column)
    means = out.agg(
        *[F.avg(F.abs(c)).alias(f"c{i}") for i, c in enumerate(by_column.values())]
    ).first()
    table = pd.DataFrame(
        {
            "feature": names,
            "value": [float(means[f"c{i}"] or 0.0) for i in range(len(names))],
            "kind": "mean |contribution|",
        }
    )
    table = table.sort_values("value", ascending=False, kind="stable").head(top)
    return table.reset_index(drop=True)
