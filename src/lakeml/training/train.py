"""`lakeml train`: tune Spark ML churn models out of time, evaluate, track, register, gate.

Stages: train.data (training set, out-of-time split) -> train.tune (per model type: fit
the grid on the train window, choose on the validation window, threshold from validation
scores, score the test window) -> train.refit (the winner on train + validation, scored
on test) -> train.baseline (scikit-learn, same protocol) -> train.log (MLflow, see
`lakeml.training.runlog`) -> train.gate (register the winner as challenger; the champion moves
only through the gate, judged on this run's test window).

The winner is chosen on validation, never on test; the other types' test metrics (fit on
the train window, so comparable with each other) are for information.
"""

from __future__ import annotations

import time
from typing import Any

import mlflow
import mlflow.spark
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from pyspark.errors import PySparkException
from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession

from lakeml.core.config import Config, TrainConfig
from lakeml.core.report import Report
from lakeml.registry import versions as registry
from lakeml.tracking import store as tracking
from lakeml.training import baseline as sk_baseline
from lakeml.training import evaluate, models, runlog, trainset
from lakeml.training.evaluate import Outcome
from lakeml.training.trainset import RANDOM, TEST, TRAIN, VALIDATION, WEIGHT_COL, TrainingSet

BASELINE = "baseline"


def run(spark: SparkSession, cfg: Config, report: Report) -> dict[str, Any]:
    """Train, evaluate, log and register churn models; gate the champion. See the module doc."""
    t = cfg.train
    # Fail fast, before any Spark work: unreachable server, unknown model type or grid param.
    client = tracking.connect(cfg)
    candidates = models.candidates(t.models, t.label_col, WEIGHT_COL, t.seed)
    with report.stage("train.data"):
        ts = trainset.load_training_set(spark, cfg)
    _report_data(report, ts)
    try:
        with report.stage("train.tune"):
            outcomes = [train_model(spark, cfg, ts, c, report) for c in candidates]
        # Chosen on validation: the first model type with the best value (config order).
        best = max(range(len(outcomes)), key=lambda i: (outcomes[i].validation_metric, -i))
        report.progress(
            "train.tune", f"winner on validation {t.primary_metric}: {outcomes[best].name}"
        )
        with report.stage("train.refit"):
            winner = refit_winner(cfg, ts, candidates[best], outcomes[best], report)
        base = None
        if t.baseline.enabled:
            with report.stage("train.baseline"):
                base = _train_baseline(cfg, ts, report)
        with mlflow.start_run(run_name="train", tags={"lakeml.command": "train"}) as parent:
            with report.stage("train.log"):
                logged = runlog.log_runs(cfg, ts, outcomes, winner, base)
            report.progress(
                "train.log",
                f"parent run {parent.info.run_id}: {len(logged['runs'])} nested runs; "
                f"model logging {logged['model_seconds']}s, everything else "
                f"{logged['other_seconds']}s",
            )
            with report.stage("train.gate"):
                gate = _register_and_gate(spark, client, cfg, ts, winner, base, logged, report)
    finally:
        ts.cached.unpersist()
    summary = _summary(cfg, ts, outcomes, winner, base, parent.info.run_id, logged, gate)
    report.add(train=summary)
    lines = _summary_lines(cfg, [*outcomes, winner, *([base] if base else [])], summary)
    return {**summary, "summary_lines": lines}


def _report_data(report: Report, ts: TrainingSet) -> None:
    split = ts.split
    for window, dates in ((TRAIN, split.train), (VALIDATION, split.validation), (TEST, split.test)):
        c = ts.counts[window]
        if split.method == RANDOM:
            share = {TEST: split.test_fraction, VALIDATION: split.validation_fraction}.get(
                window, 1 - split.test_fraction - split.validation_fraction
            )
            where = f"random {share:.0%} of entities of {len(dates)} snapshots"
        else:
            where = f"{len(dates)} snapshots {dates[0]}..{dates[-1]}"
        report.progress("train.data", f"{window}: {where}, {c[0] + c[1]} rows, {c[1]} churned")
    report.progress(
        "train.data",
        f"{len(ts.spec.numeric)} numeric + {len(ts.spec.categorical)} categorical features; "
        f"features v{ts.lineage.features_version}, labels v{ts.lineage.labels_version}",
    )


def _merged(*counts: dict[int, int]) -> dict[int, int]:
    return {c: sum(x[c] for x in counts) for c in (0, 1)}


def _score_test_window(
    model: PipelineModel, ts: TrainingSet, threshold: float, t: TrainConfig
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Labels, P(churn) and the evaluation metrics of `model` on the test window."""
    test = evaluate.collect_scores(model.transform(ts.window(TEST)), t.label_col)
    y, p = test[evaluate.LABEL].to_numpy(), test[evaluate.SCORE].to_numpy()
    return y, p, evaluate.binary_metrics(y, p, threshold, t.top_k_pcts)


def train_model(
    spark: SparkSession, cfg: Config, ts: TrainingSet, cand: models.Candidate, report: Report
) -> Outcome:
    """One model type: tune on train vs validation, threshold from validation, score the
    test window as fit on train (the winner alone is refit on train + validation later)."""
    t = cfg.train
    started = time.monotonic()
    weights = trainset.class_weights(ts.counts[TRAIN], t.class_weight)
    train = trainset.with_weights(ts.window(TRAIN), weights, t.label_col)
    tuned = models.tune(
        cand,
        ts.spec,
        train,
        ts.window(VALIDATION),
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
    y, p, metrics = _score_test_window(tuned.model, ts, threshold, t)
    seconds = round(time.monotonic() - started, 2)
    report.progress(
        "train.tune",
        f"{cand.model_type}: {len(cand.param_maps)} grid points, best {tuned.best_params}, "
        f"validation {t.primary_metric} {tuned.validation_metric:.4f}; test ROC AUC "
        f"{metrics['roc_auc']:.4f}, PR AUC {metrics['pr_auc']:.4f} ({seconds}s)",
    )
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
        seconds=seconds,
    )


def refit_winner(
    cfg: Config, ts: TrainingSet, cand: models.Candidate, tuned: Outcome, report: Report
) -> Outcome:
    """The winning model type and params refit on train + validation, scored on test.

    We refit: for churn the latest labelled behaviour matters most, and the validation
    window has done its job (choosing params and threshold). The threshold stays the one
    chosen on the train-only fit's validation scores, the only out-of-sample ones there are.
    """
    t = cfg.train
    started = time.monotonic()
    counts = _merged(ts.counts[TRAIN], ts.counts[VALIDATION])
    weights = trainset.class_weights(counts, t.class_weight)
    fit = trainset.with_weights(ts.window(TRAIN, VALIDATION), weights, t.label_col)
    final = models.refit(cand, ts.spec, tuned.params, fit)
    y, p, metrics = _score_test_window(final, ts, tuned.threshold, t)
    seconds = round(time.monotonic() - started, 2)
    report.progress(
        "train.refit",
        f"{cand.model_type} refit on train + validation ({counts[0] + counts[1]} rows): test "
        f"ROC AUC {metrics['roc_auc']:.4f}, PR AUC {metrics['pr_auc']:.4f} ({seconds}s)",
    )
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
        seconds=seconds,
        fit_window=f"{TRAIN}+{VALIDATION}",
    )


def _train_baseline(cfg: Config, ts: TrainingSet, report: Report) -> Outcome:
    """The scikit-learn baseline under the same protocol, on pandas samples of the windows."""
    t = cfg.train
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
    seconds = round(time.monotonic() - started, 2)
    report.progress(
        "train.baseline",
        f"scikit-learn on {len(train)} + {len(val)} sampled rows: test ROC AUC "
        f"{metrics['roc_auc']:.4f}, PR AUC {metrics['pr_auc']:.4f} ({seconds}s)",
    )
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
        _baseline_weights(final, ts),
        seconds=seconds,
        fit_window=f"{TRAIN}+{VALIDATION}",
    )


def _baseline_weights(model: Any, ts: TrainingSet) -> pd.DataFrame:
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


def _score_champion(
    mv: Any, ts: TrainingSet, cfg: Config
) -> tuple[dict[str, float] | None, str | None]:
    """The champion's metrics on THIS test window, or why it could not be scored."""
    t = cfg.train
    uri = f"models:/{mv.name}/{mv.version}"
    try:
        model = mlflow.spark.load_model(uri)
        scores = evaluate.collect_scores(model.transform(ts.window(TEST)), t.label_col)
    except (PySparkException, MlflowException, OSError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return None, f"it could not score this test window ({first_line[:300]})"
    threshold = float((mv.tags or {}).get("threshold", 0.5))
    metrics = evaluate.binary_metrics(
        scores[evaluate.LABEL], scores[evaluate.SCORE], threshold, t.top_k_pcts
    )
    return metrics, None


def _version_tags(
    cfg: Config, ts: TrainingSet, o: Outcome, decision: str, reasons: str
) -> dict[str, str]:
    """The tags every registered version carries (see the model contract)."""
    t = cfg.train
    return {
        "threshold": repr(float(o.threshold)),
        "entity_col": t.entity_col,
        "snapshot_col": t.snapshot_col,
        "label_col": t.label_col,
        **ts.lineage.as_tags(),
        **ts.split.as_tags(),
        "gate_decision": decision,
        "gate_reasons": reasons,
        "test_roc_auc": repr(o.test["roc_auc"]),
        "test_pr_auc": repr(o.test["pr_auc"]),
        "model_type": o.name,
        "config_digest": cfg.digest(),
    }


def _register_and_gate(
    spark: SparkSession,
    client: mlflow.MlflowClient,
    cfg: Config,
    ts: TrainingSet,
    winner: Outcome,
    base: Outcome | None,
    logged: dict[str, Any],
    report: Report,
) -> dict[str, Any]:
    """Score the current champion on this test window, decide, register, move aliases."""
    name = cfg.mlflow.registered_model
    champion = registry.alias_version(client, name, registry.CHAMPION)
    champion_metrics, champion_error = None, None
    if champion is not None:
        champion_metrics, champion_error = _score_champion(champion, ts, cfg)
    result = registry.gate_decision(
        winner.test,
        champion_metrics,
        cfg.train.gate,
        champion.version if champion else None,
        champion_error,
    )
    reasons = "; ".join(result.reasons)
    tags = _version_tags(cfg, ts, winner, result.decision, reasons)
    # MLflow hands versions back as int or str depending on the call: the summary uses int.
    previous = int(champion.version) if champion else None
    mv = registry.register(logged["model_uris"][winner.name], name, tags)
    client.set_registered_model_alias(name, registry.CHALLENGER, mv.version)
    if result.promoted:
        client.set_registered_model_alias(name, registry.CHAMPION, mv.version)
    version = int(mv.version)
    champion_now = version if result.promoted else previous
    mlflow.set_tags(
        {"gate_decision": result.decision, "gate_reasons": reasons, "model_version": mv.version}
    )
    if champion_metrics:
        mlflow.log_metrics(runlog.prefixed(champion_metrics, "champion_test_"))
    report.progress(
        "train.gate",
        f"{name} v{mv.version} ({winner.name}) is challenger; {result.decision}: {reasons}",
    )
    out: dict[str, Any] = {
        "decision": result.decision,
        "reasons": result.reasons,
        "version": version,
        "previous_champion": previous,
        "previous_champion_test": champion_metrics,
        "champion_version": champion_now,
    }
    if base is not None:
        base_tags = _version_tags(
            cfg, ts, base, "baseline", "scikit-learn baseline: registered, never gated"
        )
        bmv = registry.register(logged["model_uris"][BASELINE], f"{name}-baseline", base_tags)
        out["baseline_version"] = int(bmv.version)
    return out


def _headline(metrics: dict[str, float] | None) -> dict[str, float] | None:
    keys = ("roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1", "threshold")
    if metrics is None:
        return None
    extra = {k: v for k, v in metrics.items() if k.startswith(("precision_at", "lift_at"))}
    return {k: round(float(metrics[k]), 4) for k in keys} | {
        k: round(float(v), 4) for k, v in extra.items()
    }


def _summary(
    cfg: Config,
    ts: TrainingSet,
    outcomes: list[Outcome],
    winner: Outcome,
    base: Outcome | None,
    parent_id: str,
    logged: dict[str, Any],
    gate: dict[str, Any],
) -> dict[str, Any]:
    """What the JSON summary line says about this training."""
    name = cfg.mlflow.registered_model
    by_name = {o.name: o for o in outcomes}
    champion_version = gate["champion_version"]
    if champion_version == gate["version"]:
        champion_test = _headline(winner.test)
    else:
        champion_test = _headline(gate["previous_champion_test"])
    out: dict[str, Any] = {
        "tracking_uri": cfg.tracking_uri,
        "experiment": cfg.mlflow.experiment,
        "parent_run_id": parent_id,
        "run_ids": logged["runs"],
        "rows": {w: sum(ts.counts[w].values()) for w in (TRAIN, VALIDATION, TEST)},
        "snapshots": ts.split.as_tags(),
        "lineage": ts.lineage.as_tags(),
        "models": {
            n: {
                "best_params": o.params,
                f"validation_{cfg.train.primary_metric}": round(o.validation_metric or 0.0, 4),
                "test_fit_on_train": _headline(o.test),
                "seconds": o.seconds,
            }
            for n, o in by_name.items()
        },
        "winner": winner.name,
        "challenger": {
            "version": gate["version"],
            "model_uri": f"models:/{name}/{gate['version']}",
            "model_type": winner.name,
            "fit_window": winner.fit_window,
            "test": _headline(winner.test),
        },
        "champion": {
            "model_uri": f"models:/{name}@champion" if champion_version else None,
            "version": champion_version,
            "test": champion_test,
        },
        "gate": {
            "decision": gate["decision"],
            "reasons": gate["reasons"],
            "previous_champion": gate["previous_champion"],
        },
        "logging_seconds": {"models": logged["model_seconds"], "other": logged["other_seconds"]},
    }
    if base is not None:
        out["baseline"] = {
            "version": gate.get("baseline_version"),
            "model_uri": f"models:/{name}-baseline/{gate.get('baseline_version')}",
            "test": _headline(base.test),
        }
    return out


def _summary_lines(cfg: Config, outcomes: list[Outcome], summary: dict[str, Any]) -> list[str]:
    """A few lines for people, printed by the pipeline before the JSON line."""
    rows = summary["rows"]
    lines = [
        f"training rows train/validation/test: {rows[TRAIN]}/{rows[VALIDATION]}/{rows[TEST]}"
        f" (test snapshots {summary['snapshots']['test_snapshots']})",
    ]
    first_k = evaluate.pct_name(cfg.train.top_k_pcts[0]) if cfg.train.top_k_pcts else "-"
    for o in outcomes:
        lines.append(
            f"{o.name} (fit on {o.fit_window}): test ROC AUC {o.test['roc_auc']:.3f}, "
            f"PR AUC {o.test['pr_auc']:.3f}, lift@{first_k} {_first_lift(o.test)}"
        )
    gate, champ = summary["gate"], summary["champion"]
    lines.append(
        f"winner {summary['winner']} -> {cfg.mlflow.registered_model} "
        f"v{summary['challenger']['version']} (challenger): {gate['decision']}"
    )
    lines.append(f"champion: {champ['model_uri'] or 'none'} = v{champ['version'] or '-'}")
    return lines


def _first_lift(metrics: dict[str, float]) -> str:
    lifts = [v for k, v in metrics.items() if k.startswith("lift_at_")]
    return f"{lifts[0]:.2f}" if lifts else "-"
