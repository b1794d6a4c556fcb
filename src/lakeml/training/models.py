"""Spark ML churn pipelines, their parameter grids, and tuning on an out-of-time window.

One PipelineModel holds imputation, encoding, assembly, scaling and the classifier, so
scoring applies exactly the transformations training fitted, from raw feature columns.
"""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass
from multiprocessing.pool import ThreadPool
from typing import Any

import pandas as pd
from pyspark.errors import IllegalArgumentException
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import (
    GBTClassifier,
    LogisticRegression,
    RandomForestClassifier,
)
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import (
    Imputer,
    OneHotEncoder,
    StandardScaler,
    StringIndexer,
    VectorAssembler,
)
from pyspark.ml.tuning import ParamGridBuilder
from pyspark.sql import DataFrame, SparkSession
from pyspark.util import inheritable_thread_target

from lakeml.core.config import ModelSpec
from lakeml.core.errors import LakemlError
from lakeml.training.trainset import FeatureSpec

CLASSIFIERS = {
    "logistic_regression": LogisticRegression,
    "random_forest": RandomForestClassifier,
    "gbt": GBTClassifier,
}
# Column wiring the pipeline owns; a grid must not change it.
RESERVED_PARAMS = (
    "featuresCol",
    "labelCol",
    "weightCol",
    "predictionCol",
    "probabilityCol",
    "rawPredictionCol",
)
IMPUTED, INDEXED, ONEHOT = "__imputed", "__index", "__onehot"
ASSEMBLED, FEATURES = "_lakeml_assembled", "_lakeml_features"


@dataclass(frozen=True)
class Candidate:
    """A model type with its validated grid, ready to tune."""

    model_type: str
    estimator: Any  # a pyspark.ml classifier with the fixed params set
    param_maps: list[dict[Any, Any]]


@dataclass
class Tuned:
    """The outcome of tuning one model type on the validation window."""

    model_type: str
    best_params: dict[str, Any]
    validation_metric: float
    grid_results: list[dict[str, Any]]  # every grid point with its validation metric
    model: PipelineModel  # the best grid point, fit on the train window only
    seconds: float = 0.0


def preprocessing(spec: FeatureSpec, scale: bool) -> list[Any]:
    """Median imputation, index + one-hot for categoricals, assembly, optional scaling.

    handleInvalid="keep" gives nulls and categories unseen in training their own index,
    which the one-hot encoder (dropLast) turns into all zeros instead of failing.
    """
    numeric, categorical = list(spec.numeric), list(spec.categorical)
    stages: list[Any] = []
    if numeric:
        stages.append(
            Imputer(inputCols=numeric, outputCols=[c + IMPUTED for c in numeric], strategy="median")
        )
    if categorical:
        stages += [
            StringIndexer(
                inputCols=categorical,
                outputCols=[c + INDEXED for c in categorical],
                handleInvalid="keep",
            ),
            OneHotEncoder(
                inputCols=[c + INDEXED for c in categorical],
                outputCols=[c + ONEHOT for c in categorical],
            ),
        ]
    inputs = [c + IMPUTED for c in numeric] + [c + ONEHOT for c in categorical]
    stages.append(VectorAssembler(inputCols=inputs, outputCol=ASSEMBLED))
    # Scaling matters for regularised logistic regression only; trees split on ranks.
    if scale:
        stages.append(StandardScaler(inputCol=ASSEMBLED, outputCol=FEATURES))
    return stages


def features_col(model_type: str) -> str:
    return FEATURES if model_type == "logistic_regression" else ASSEMBLED


def classifier(model_type: str, label_col: str, weight_col: str, seed: int) -> Any:
    """The classifier for a model type, reading the pipeline's feature and weight columns."""
    est = CLASSIFIERS[model_type](
        featuresCol=features_col(model_type), labelCol=label_col, weightCol=weight_col
    )
    if est.hasParam("seed"):
        est.setSeed(seed)
    return est


def param_maps(est: Any, grid: dict[str, list[Any]], where: str) -> list[dict[Any, Any]]:
    """The grid as Spark ParamMaps; unknown names and invalid values are clear errors."""
    name = type(est).__name__
    builder = ParamGridBuilder()
    for param, values in grid.items():
        if param in RESERVED_PARAMS or not est.hasParam(param):
            known = sorted(p.name for p in est.params if p.name not in RESERVED_PARAMS)
            close = difflib.get_close_matches(param, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise LakemlError(
                f"{where}: {name} has no tunable parameter {param!r}; {hint}"
                f"known: {', '.join(known)}"
            )
        builder.addGrid(est.getParam(param), values if isinstance(values, list) else [values])
    try:
        maps = builder.build()  # converts values to the params' types
        # copy() hands the values to the JVM, which checks their ranges (maxDepth >= 0 ...).
        for m in maps:
            est.copy(m)
    except (TypeError, ValueError, IllegalArgumentException) as exc:
        raise LakemlError(f"{where}: invalid grid value: {exc}") from None
    return maps


def candidates(
    specs: list[ModelSpec], label_col: str, weight_col: str, seed: int
) -> list[Candidate]:
    """Validate every configured model and grid before any data is read."""
    if not specs:
        raise LakemlError("train.models is empty; configure at least one model type")
    out = []
    for i, spec in enumerate(specs):
        est = classifier(spec.type, label_col, weight_col, seed)
        out.append(Candidate(spec.type, est, param_maps(est, spec.grid, f"train.models[{i}].grid")))
    return out


def params_dict(param_map: dict[Any, Any]) -> dict[str, Any]:
    return {p.name: v for p, v in param_map.items()}


def tune(
    candidate: Candidate,
    spec: FeatureSpec,
    train: DataFrame,
    validation: DataFrame,
    label_col: str,
    weight_col: str,
    metric: str,
    parallelism: int,
) -> Tuned:
    """Fit every grid point on the train window, pick the best on the validation window.

    Why not TrainValidationSplit: it splits rows at random, so validation rows would share
    snapshots with training rows, which hides the drift a churn model meets in production.
    CrossValidator with a 2-value foldCol would also fit on the validation window and judge
    on the train one (the past), then average the two. So each grid point is fit with
    `fitMultiple` on the train window and scored with the evaluator on the validation
    window: an honest out-of-time choice, `parallelism` grid points at a time. The
    preprocessing does not depend on the grid, so it is fit once on the train window.
    """
    started = time.monotonic()
    model_type = candidate.model_type
    prep = Pipeline(stages=preprocessing(spec, scale=model_type == "logistic_regression"))
    prep_model = prep.fit(train)
    fcol = features_col(model_type)
    fit_rows = prep_model.transform(train).select(fcol, label_col, weight_col).persist()
    val_rows = prep_model.transform(validation).select(fcol, label_col).persist()
    evaluator = BinaryClassificationEvaluator(
        rawPredictionCol="probability", labelCol=label_col, metricName=metric
    )
    maps = candidate.param_maps
    fitted = candidate.estimator.fitMultiple(fit_rows, maps)  # a thread-safe iterator

    def fit_next() -> tuple[int, float, Any]:
        index, model = next(fitted)
        return index, evaluator.evaluate(model.transform(val_rows)), model

    try:
        with ThreadPool(max(1, min(parallelism, len(maps)))) as pool:
            tasks = [inheritable_thread_target(train.sparkSession)(fit_next) for _ in maps]
            results = pool.map(lambda task: task(), tasks)
    finally:
        fit_rows.unpersist()
        val_rows.unpersist()
    results.sort(key=lambda r: r[0])
    # Highest validation metric; ties go to the earlier grid point (config order).
    best_index, best_metric, best_model = max(results, key=lambda r: (r[1], -r[0]))
    grid_results = [{**params_dict(maps[i]), metric: m} for i, m, _ in results]
    return Tuned(
        model_type=model_type,
        best_params=params_dict(maps[best_index]),
        validation_metric=float(best_metric),
        grid_results=grid_results,
        model=PipelineModel(stages=[*prep_model.stages, best_model]),
        seconds=round(time.monotonic() - started, 2),
    )


def refit(
    candidate: Candidate, spec: FeatureSpec, params: dict[str, Any], df: DataFrame
) -> PipelineModel:
    """The whole pipeline with the chosen params, fit on `df` (train + validation windows)."""
    est = candidate.estimator
    chosen = {est.getParam(k): v for k, v in params.items()}
    stages = preprocessing(spec, scale=candidate.model_type == "logistic_regression")
    return Pipeline(stages=[*stages, est.copy(chosen)]).fit(df)


def readable_feature(name: str) -> str:
    """Assembler slot name -> feature name: 'songs_7d__imputed' -> 'songs_7d',
    'gender__onehot_M' -> 'gender=M'."""
    if name.endswith(IMPUTED):
        return name[: -len(IMPUTED)]
    if ONEHOT + "_" in name:
        column, _, value = name.partition(ONEHOT + "_")
        return f"{column}={value}"
    return name


def feature_weights(spark: SparkSession, model: PipelineModel, spec: FeatureSpec) -> pd.DataFrame:
    """Coefficients (logistic regression, on standardised features) or importances (trees)
    per feature, named after the input columns and categories, largest magnitude first."""
    # Transforming an empty frame runs no job but yields the assembler's slot names.
    empty = model.transform(spark.createDataFrame([], spec.schema))
    attrs = empty.schema[ASSEMBLED].metadata.get("ml_attr", {}).get("attrs", {})
    slots = {a["idx"]: a["name"] for group in attrs.values() for a in group}
    names = [readable_feature(slots.get(i, f"slot_{i}")) for i in range(len(slots))]
    last = model.stages[-1]
    if hasattr(last, "coefficients"):
        values, kind = last.coefficients.toArray(), "coefficient"
    else:
        values, kind = last.featureImportances.toArray(), "importance"
    table = pd.DataFrame({"feature": names[: len(values)], "value": values, "kind": kind})
    order = table["value"].abs().sort_values(ascending=False, kind="stable").index
    return table.loc[order].reset_index(drop=True)
