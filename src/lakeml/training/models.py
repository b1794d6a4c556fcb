"""Spark ML churn pipelines, their parameter grids, and tuning on an out-of-time window.

One PipelineModel holds imputation, encoding, assembly, scaling and the classifier, so
scoring applies exactly the transformations training fitted, from raw feature columns.
Model type `xgboost` is xgboost's own Spark estimator (`xgboost.spark`): one booster trained
across Spark tasks, missing values left to it (no imputation), stopped early on the
validation window.
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
from pyspark.sql import functions as F
from pyspark.util import inheritable_thread_target

from lakeml.core.config import ModelSpec, XGBoostConfig
from lakeml.core.errors import LakemlError
from lakeml.core.session import task_slots
from lakeml.training.trainset import FeatureSpec

XGBOOST = "xgboost"
# Spark ML's own classifiers; `xgboost` (SparkXGBClassifier) is imported when configured.
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
# What lakeml sets on xgboost's estimator itself (train.xgboost, the validation window, NaN
# as missing, quiet logs) or that would change what the pipeline outputs.
XGB_RESERVED = (
    "validationIndicatorCol",
    "num_workers",
    "early_stopping_rounds",
    "eval_metric",
    "missing",
    "objective",
    "pred_contrib_col",
    "features_cols",
    "feature_names",
    "feature_types",
    "base_margin_col",
    "qid_col",
    "xgb_model",
    "callbacks",
    "arbitrary_params_dict",
    "device",
    "verbose",
    "verbosity",
)
# The validation metric xgboost stops early on, by train.primary_metric.
XGB_EVAL_METRICS = {"areaUnderPR": "aucpr", "areaUnderROC": "auc"}
IS_VALIDATION = "_lakeml_is_validation"
IMPUTED, INDEXED, ONEHOT = "__imputed", "__index", "__onehot"
ASSEMBLED, FEATURES = "_lakeml_assembled", "_lakeml_features"


@dataclass(frozen=True)
class Candidate:
    """A model type with its validated grid, ready to tune."""

    model_type: str
    estimator: Any  # a pyspark.ml classifier with the fixed params set
    param_maps: list[dict[Any, Any]]
    xgboost: XGBoostConfig | None = None  # workers and early stopping (type xgboost)


@dataclass
class Tuned:
    """The outcome of tuning one model type on the validation window."""

    model_type: str
    best_params: dict[str, Any]
    validation_metric: float
    grid_results: list[dict[str, Any]]  # every grid point with its validation metric
    model: PipelineModel  # the best grid point, fit on the train window only
    seconds: float = 0.0
    best_iteration: int | None = None  # xgboost: the round early stopping kept


def preprocessing(spec: FeatureSpec, scale: bool, impute: bool = True) -> list[Any]:
    """Median imputation, index + one-hot for categoricals, assembly, optional scaling.

    handleInvalid="keep" gives nulls and categories unseen in training their own index,
    which the one-hot encoder (dropLast) turns into all zeros instead of failing. Without
    `impute` a missing number reaches the model as NaN (xgboost learns where to send it).
    """
    numeric, categorical = list(spec.numeric), list(spec.categorical)
    stages: list[Any] = []
    if numeric and impute:
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
    inputs = [c + IMPUTED if impute else c for c in numeric] + [c + ONEHOT for c in categorical]
    invalid = "error" if impute else "keep"  # keep: a null becomes NaN in the vector
    stages.append(VectorAssembler(inputCols=inputs, outputCol=ASSEMBLED, handleInvalid=invalid))
    # Scaling matters for regularised logistic regression only; trees split on ranks.
    if scale:
        stages.append(StandardScaler(inputCol=ASSEMBLED, outputCol=FEATURES))
    return stages


def features_col(model_type: str) -> str:
    return FEATURES if model_type == "logistic_regression" else ASSEMBLED


def pipeline_stages(spec: FeatureSpec, model_type: str) -> list[Any]:
    """The preprocessing a model type gets: scaled for logistic regression, unimputed for
    xgboost."""
    return preprocessing(
        spec, scale=model_type == "logistic_regression", impute=model_type != XGBOOST
    )


def classifier(
    model_type: str, label_col: str, weight_col: str, seed: int, metric: str = "areaUnderPR"
) -> Any:
    """The classifier for a model type, reading the pipeline's feature and weight columns."""
    if model_type == XGBOOST:
        from xgboost.spark import SparkXGBClassifier

        return SparkXGBClassifier(
            features_col=ASSEMBLED,
            label_col=label_col,
            weight_col=weight_col,
            random_state=seed,
            eval_metric=XGB_EVAL_METRICS[metric],
            verbosity=0,
            verbose=False,  # no line per boosting round
        )
    est = CLASSIFIERS[model_type](
        featuresCol=features_col(model_type), labelCol=label_col, weightCol=weight_col
    )
    if est.hasParam("seed"):
        est.setSeed(seed)
    return est


def param_maps(est: Any, grid: dict[str, list[Any]], where: str) -> list[dict[Any, Any]]:
    """The grid as Spark ParamMaps; unknown names and invalid values are clear errors."""
    name = type(est).__name__
    reserved = set(RESERVED_PARAMS) | (set(XGB_RESERVED) if name == "SparkXGBClassifier" else set())
    builder = ParamGridBuilder()
    for param, values in grid.items():
        if param in reserved or not est.hasParam(param):
            known = sorted(p.name for p in est.params if p.name not in reserved)
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
    specs: list[ModelSpec],
    label_col: str,
    weight_col: str,
    seed: int,
    metric: str = "areaUnderPR",
    xgboost: XGBoostConfig | None = None,
) -> list[Candidate]:
    """Validate every configured model and grid before any data is read."""
    if not specs:
        raise LakemlError("train.models is empty; configure at least one model type")
    out = []
    for i, spec in enumerate(specs):
        est = classifier(spec.type, label_col, weight_col, seed, metric)
        maps = param_maps(est, spec.grid, f"train.models[{i}].grid")
        xgb = (xgboost or XGBoostConfig()) if spec.type == XGBOOST else None
        out.append(Candidate(spec.type, est, maps, xgb))
    return out


def on_workers(candidate: Candidate, spark: SparkSession) -> Any:
    """xgboost's estimator set to train on `train.xgboost.num_workers` tasks (default: every
    task slot). A barrier stage wider than the slots would wait for ever, so more workers
    than slots is a one-line error before any fit."""
    est, xgb = candidate.estimator, candidate.xgboost
    if xgb is None:
        return est
    slots = task_slots(spark)
    workers = xgb.num_workers or slots
    if workers > slots or workers < 1:
        raise LakemlError(
            f"train.xgboost.num_workers is {workers} but this Spark session runs {slots} "
            f"task(s) at once ({spark.sparkContext.master}); xgboost trains on all its workers "
            "at once and would wait for the missing ones for ever: lower num_workers (or "
            "leave it out to use every slot) or give the session more cores or executors"
        )
    return est.copy({est.getParam("num_workers"): workers})


def best_iteration(model: Any) -> int:
    """The boosting round an early-stopped xgboost model predicts with (0-based)."""
    booster = model.get_booster()
    return int(booster.attributes().get("best_iteration", booster.num_boosted_rounds() - 1))


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
    prep_model = Pipeline(stages=pipeline_stages(spec, model_type)).fit(train)
    fcol = features_col(model_type)
    estimator = candidate.estimator
    if candidate.xgboost is not None:
        # xgboost stops early on the validation window, which it reads as the rows flagged
        # IS_VALIDATION in its fit data (weighted like the train rows).
        estimator = on_workers(candidate, train.sparkSession).copy(
            {
                estimator.getParam("validationIndicatorCol"): IS_VALIDATION,
                estimator.getParam("early_stopping_rounds"): (
                    candidate.xgboost.early_stopping_rounds
                ),
            }
        )
        flagged = train.withColumn(IS_VALIDATION, F.lit(False)).unionByName(
            validation.select(*train.columns).withColumn(IS_VALIDATION, F.lit(True))
        )
        fit_cols = [fcol, label_col, weight_col, IS_VALIDATION]
        fit_rows = prep_model.transform(flagged).select(*fit_cols).persist()
        # Each fit takes every worker: grid points one after another.
        parallelism = 1
    else:
        fit_rows = prep_model.transform(train).select(fcol, label_col, weight_col).persist()
    val_rows = prep_model.transform(validation).select(fcol, label_col).persist()
    evaluator = BinaryClassificationEvaluator(
        rawPredictionCol="probability", labelCol=label_col, metricName=metric
    )
    maps = candidate.param_maps
    fitted = estimator.fitMultiple(fit_rows, maps)  # a thread-safe iterator

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
    best_params = params_dict(maps[best_index])
    kept = None
    if candidate.xgboost is not None:
        for row, (_, _, model) in zip(grid_results, results, strict=True):
            row["best_iteration"] = best_iteration(model)
        kept = best_iteration(best_model)
        # The refit on train + validation has no window left to stop on: it grows the
        # rounds early stopping kept, on as many workers (both logged with the params).
        best_params["n_estimators"] = kept + 1
        best_params["num_workers"] = estimator.getOrDefault("num_workers")
    return Tuned(
        model_type=model_type,
        best_params=best_params,
        validation_metric=float(best_metric),
        grid_results=grid_results,
        model=PipelineModel(stages=[*prep_model.stages, best_model]),
        seconds=round(time.monotonic() - started, 2),
        best_iteration=kept,
    )


def refit(
    candidate: Candidate, spec: FeatureSpec, params: dict[str, Any], df: DataFrame
) -> PipelineModel:
    """The whole pipeline with the chosen params, fit on `df` (train + validation windows)."""
    est = on_workers(candidate, df.sparkSession)
    chosen = {est.getParam(k): v for k, v in params.items()}
    stages = pipeline_stages(spec, candidate.model_type)
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
    elif hasattr(last, "get_booster"):
        # xgboost names the slots f0, f1, ...; a slot no tree splits on is absent (0 gain).
        gain = last.get_feature_importances(importance_type="total_gain")
        total = sum(gain.values()) or 1.0
        values = [float(gain.get(f"f{i}", 0.0)) / total for i in range(len(names))]
        kind = "importance"
    else:
        values, kind = last.featureImportances.toArray(), "importance"
    table = pd.DataFrame({"feature": names[: len(values)], "value": values, "kind": kind})
    order = table["value"].abs().sort_values(ascending=False, kind="stable").index
    return table.loc[order].reset_index(drop=True)
