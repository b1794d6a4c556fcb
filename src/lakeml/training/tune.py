"""Fit the model types: tune each out of time, refit the winner, train the baseline.

Each model type is tuned on the train window and judged on validation; its threshold comes
from validation scores and it is scored on test as fit on train, so all types compare on
equal terms. The winner (chosen on validation, never on test) is refit on train +
validation. The scikit-learn baseline follows the same protocol on pandas samples.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession

from lakeml.core.config import TrainConfig
from lakeml.scoring import reasons
from lakeml.training import baseline as sk_baseline
from lakeml.training import evaluate, models, trainset
from lakeml.training.evaluate import Outcome
from lakeml.training.trainset import TEST, TRAIN, VALIDATION, WEIGHT_COL, TrainingSet

BASELINE = "baseline"


def merged_counts(*counts: dict[int, int]) -> dict[int, int]:
    return {c: sum(x[c] for x in counts) for c in (0, 1)}


def score_test_window(
    model: PipelineModel, ts: TrainingSet, threshold: float, t: TrainConfig
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Labels, P(churn) and the evaluation metrics of `model` on the test window."""
    test = evaluate.collect_scores(model.transform(ts.window(TEST)), t.label_col)
    y, p = test[evaluate.LABEL].to_numpy(), test[evaluate.SCORE].to_numpy()
    return y, p, evaluate.binary_metrics(y, p, threshold, t.top_k_pcts)


def best_outcome(outcomes: list[Outcome]) -> int:
    """Index of the model type with the best validation metric (ties: config order)."""
    return max(range(len(outcomes)), key=lambda i: (outcomes[i].validation_metric, -i))


def train_model(
    spark: SparkSession, t: TrainConfig, ts: TrainingSet, cand: models.Candidate
) -> Outcome:
    """One model type: tune on train vs validation, threshold from validation, score the
    test window as fit on train (the winner alone is refit on train + validation later)."""
    started = time.monotonic()
    weights = trainset.class_weights(ts.counts[TRAIN], t.class_weight)
    train = trainset.with_weights(ts.window(TRAIN), weights, t.label_col)
    # Validation rows weighted like the train rows: xgboost stops early on them.
    validation = trainset.with_weights(ts.window(VALIDATION), weights, t.label_col)
    tuned = models.tune(
        cand,
        ts.spec,
        train,
        validation,
        t.label_col,
        WEIGHT_COL,
        t.primary_metric,
        t.parallelism,
    )
    val = evaluate.collect_scores(tuned.model.transform(ts.window(VALIDATION)), t.label_col)
    threshold = evaluate.choose_threshold(
        val[evaluate.LABEL], val[evaluate.SCORE], t.threshold.policy, t.threshold.top_k_pct
    )
    # Scored on test as fit on the train window, so all model types compare on equal terms.
    y, p, metrics = score_test_window(tuned.model, ts, threshold, t)
    return Outcome(
        name=cand.model_type,
        params=tuned.best_params,
        validation_metric=tuned.validation_metric,
        threshold=threshold,
        test=metrics,
        y=y,
        p=p,
        model=tuned.model,
        weights=models.feature_weights(spark, tuned.model, ts.spec),
        grid_results=tuned.grid_results,
        seconds=round(time.monotonic() - started, 2),
    )


def refit_winner(
    t: TrainConfig, ts: TrainingSet, cand: models.Candidate, tuned: Outcome
) -> Outcome:
    """The winning model type and params refit on train + validation, scored on test.

    We refit: for churn the latest labelled behaviour matters most, and the validation
    window has done its job (choosing params and threshold). The threshold stays the one
    chosen on the train-only fit's validation scores, the only out-of-sample ones there are.
    """
    started = time.monotonic()
    counts = merged_counts(ts.counts[TRAIN], ts.counts[VALIDATION])
    weights = trainset.class_weights(counts, t.class_weight)
    fit = trainset.with_weights(ts.window(TRAIN, VALIDATION), weights, t.label_col)
    final = models.refit(cand, ts.spec, tuned.params, fit)
    y, p, metrics = score_test_window(final, ts, tuned.threshold, t)
    # What drives its scores on the test window, from the same contributions as reasons.
    drivers = reasons.global_drivers(final, ts.window(TEST))
    return Outcome(
        name=tuned.name,
        params=tuned.params,
        validation_metric=tuned.validation_metric,
        threshold=tuned.threshold,
        test=metrics,
        y=y,
        p=p,
        model=final,
        weights=models.feature_weights(ts.df.sparkSession, final, ts.spec),
        grid_results=tuned.grid_results,
        seconds=round(time.monotonic() - started, 2),
        fit_window=f"{TRAIN}+{VALIDATION}",
        fit_rows=counts[0] + counts[1],
        drivers=drivers,
    )


def train_baseline(t: TrainConfig, ts: TrainingSet) -> Outcome:
    """The scikit-learn baseline under the same protocol, on pandas samples of the windows."""
    started = time.monotonic()
    cols = [*ts.spec.columns, t.label_col]
    cap, seed = t.baseline.sample_rows, t.seed

    def frame(window: str) -> pd.DataFrame:
        rows = sum(ts.counts[window].values())
        return sk_baseline.sample_frame(ts.window(window).select(cols), rows, cap, seed)

    train, val = frame(TRAIN), frame(VALIDATION)
    # The test window is entity-level (a snapshot or two): all of it, like the Spark models.
    test = ts.window(TEST).select(cols).toPandas()
    first = sk_baseline.fit_baseline(train, ts.spec, t.label_col, seed, t.class_weight)
    val_p = sk_baseline.churn_probability(first, val, ts.spec)
    threshold = evaluate.choose_threshold(
        val[t.label_col].to_numpy(), val_p, t.threshold.policy, t.threshold.top_k_pct
    )
    both = pd.concat([train, val], ignore_index=True)
    if len(both) > cap:
        both = both.sample(n=cap, random_state=seed)
    final = sk_baseline.fit_baseline(both, ts.spec, t.label_col, seed, t.class_weight)
    y = test[t.label_col].to_numpy().astype(int)
    p = sk_baseline.churn_probability(final, test, ts.spec)
    metrics = evaluate.binary_metrics(y, p, threshold, t.top_k_pcts)
    params = {"sample_rows": len(both), "class_weight": "balanced", "C": 1.0}
    return Outcome(
        BASELINE,
        params,
        None,
        threshold,
        metrics,
        y,
        p,
        final,
        baseline_weights(final, ts),
        seconds=round(time.monotonic() - started, 2),
        fit_window=f"{TRAIN}+{VALIDATION}",
        fit_rows=len(train) + len(val),
    )


def baseline_weights(model: Any, ts: TrainingSet) -> pd.DataFrame:
    """The baseline's coefficients named like the Spark models' ('gender=M')."""
    names = []
    for raw in model[:-1].get_feature_names_out():
        group, _, rest = str(raw).partition("__")
        if group == "categorical":
            col = max((c for c in ts.spec.categorical if rest.startswith(c + "_")), key=len)
            rest = f"{col}={rest[len(col) + 1 :]}"
        names.append(rest)
    table = pd.DataFrame({"feature": names, "value": model[-1].coef_[0], "kind": "coefficient"})
    order = table["value"].abs().sort_values(ascending=False, kind="stable").index
    return table.loc[order].reset_index(drop=True)
