"""The model's part of the journey: train (tune, refit, baseline, log, register and gate),
score a snapshot with its drift check, and the realized performance of matured snapshots.

Stage modules, MLflow and scikit-learn are imported inside the functions, so importing this
module stays cheap and a config error is reported before they load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakeml import summary
from lakeml.core.config import Config
from lakeml.core.report import Report

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def connect_tracking(cfg: Config) -> Any:
    """The MLflow client for the config's store and experiment (created if new)."""
    from lakeml.tracking import store

    return store.connect(cfg.mlflow, cfg.tracking_uri, cfg.artifact_location)


def preflight_train(cfg: Config) -> None:
    """What makes training fail for sure, checked without Spark: a tracking server that does
    not answer, and what the gold tables' Delta logs already tell (no tables, too few
    labelled snapshots, a split window with one class only)."""
    from lakeml.tracking.store import check_reachable
    from lakeml.training import preflight

    check_reachable(cfg.tracking_uri, cfg.mlflow.timeout_seconds)
    preflight.check_tables(cfg.train, cfg.table("features"), cfg.table("labels"))


def run_train(spark: SparkSession, cfg: Config, report: Report) -> dict[str, Any]:
    """Training set -> tune each model type -> refit the winner -> baseline -> MLflow runs
    -> register the winner as challenger and gate the champion."""
    from lakeml.training import models, trainset

    t = cfg.train
    # Fail fast, before reading data: preflight_train, an unknown grid param; then the data's
    # own checks on Spark (too few labelled snapshots, one class only), before MLflow and
    # scikit-learn are even imported.
    preflight_train(cfg)
    candidates = models.candidates(
        t.models, t.label_col, trainset.WEIGHT_COL, t.seed, t.primary_metric, t.xgboost
    )
    with report.stage("train.data"):
        ts = trainset.load_training_set(spark, t, cfg.table("features"), cfg.table("labels"))
    for line in summary.data_lines(ts):
        report.progress("train.data", line)
    try:
        import mlflow

        from lakeml.registry.register import Registration, register_and_gate
        from lakeml.training import runlog, tune

        client = connect_tracking(cfg)
        with report.stage("train.tune"):
            outcomes = []
            for cand in candidates:
                outcomes.append(tune.train_model(spark, t, ts, cand))
                report.progress("train.tune", summary.tuned_line(outcomes[-1], t.primary_metric))
        best = tune.best_outcome(outcomes)
        report.progress(
            "train.tune", f"winner on validation {t.primary_metric}: {outcomes[best].name}"
        )
        with report.stage("train.refit"):
            winner = tune.refit_winner(t, ts, candidates[best], outcomes[best])
        report.progress("train.refit", summary.refit_line(winner))
        base = None
        if t.baseline.enabled:
            with report.stage("train.baseline"):
                base = tune.train_baseline(t, ts)
            report.progress("train.baseline", summary.baseline_line(base))
        note = (
            f"lakeml train: {', '.join(o.name for o in outcomes)} tuned on the train window, "
            f"the winner ({winner.name}) refit on {winner.fit_window} and registered to "
            f"{cfg.mlflow.registered_model} behind the champion gate; nested runs hold each "
            "model type and the scikit-learn baseline."
        )
        train_tags = {"lakeml.command": "train", "mlflow.note.content": note}
        with mlflow.start_run(run_name="train", tags=train_tags) as parent:
            with report.stage("train.log"):
                config = (cfg.digest(), cfg.raw)
                logged = runlog.log_runs(t, config, ts, outcomes, winner, base)
            report.progress(
                "train.log",
                f"parent run {parent.info.run_id}: {len(logged.runs)} nested runs; model "
                f"logging {logged.model_seconds}s, everything else {logged.other_seconds}s",
            )
            registration = Registration(cfg.mlflow.registered_model, t, cfg.digest())
            with report.stage("train.gate"):
                gate = register_and_gate(
                    client,
                    registration,
                    ts,
                    winner,
                    logged.model_uris[winner.name],
                    base,
                    logged.model_uris.get(tune.BASELINE),
                    logged.winner_tags,
                )
            report.progress(
                "train.gate",
                f"{registration.name} v{gate.version} ({winner.name}) is challenger; "
                f"{gate.decision}: {'; '.join(gate.reasons)}",
            )
    finally:
        ts.cached.unpersist()
    out = summary.train_summary(cfg, ts, outcomes, winner, base, parent.info.run_id, logged, gate)
    out["experiment_id"] = parent.info.experiment_id
    report.add(train=out)
    models_seen = [*outcomes, winner, *([base] if base else [])]
    lines = summary.train_lines(cfg.mlflow.registered_model, t.top_k_pcts, models_seen, out)
    return {**out, "summary_lines": lines}


def run_score(
    spark: SparkSession,
    cfg: Config,
    report: Report,
    model_uri: str | None = None,
    snapshot_date: str | None = None,
    input_path: str | None = None,
) -> dict[str, Any]:
    """Resolve the model, check the input against its signature, score one snapshot into
    the scores table; then compare the scored features with the training window."""
    from lakeml.core import storage
    from lakeml.scoring import contract, drift, model_ref, scorer
    from lakeml.tracking import tags as tag

    client = connect_tracking(cfg)
    uri = model_uri or cfg.model_uri
    with report.stage("score"):
        ref = model_ref.resolve_model(client, uri)
        report.progress("score", f"{uri} -> {ref.name} version {ref.version} (run {ref.run_id})")
        info, features = model_ref.load_model_info(ref, uri)
        spec = contract.InputSpec(
            source=input_path or cfg.table("features"),
            snapshot_date=snapshot_date,
            uri=uri,
            features=features,
            pyfunc="spark" not in info.flavors,
            entity_col=ref.tag(tag.ENTITY_COL, cfg.train.entity_col),
            snapshot_col=ref.tag(tag.SNAPSHOT_COL, cfg.train.snapshot_col),
        )
        data = contract.load_input(spark, spec)
        report.progress(
            "score", f"{data.count} rows of snapshot {data.snapshot} from {data.source}"
        )
        if not ref.tags.get(tag.THRESHOLD):
            report.progress(
                "score", f"model has no threshold tag; labelling at {scorer.DEFAULT_THRESHOLD}"
            )
        result = scorer.score(spark, cfg.score, cfg.table("scores"), uri, ref, info, features, data)
        report.progress(
            "score",
            f"{data.count} rows scored with the {result.scorer} scorer -> {result.scores_path} "
            f"(Delta version {result.scores_version})",
        )
    # The scores are committed: if the drift check fails, the failure summary still shows
    # them; a rerun replaces this snapshot and version's scores and drift rows alike.
    report.add(score=summary.score_summary(result))
    with report.stage("drift"):
        d = drift.check_drift(
            spark,
            cfg.monitor,
            cfg.table("drift"),
            data.rows,
            [(f.name, f.type) for f in features],
            data.snapshot,
            (ref.name, ref.version, ref.tags),
            data.snapshot_col,
            scores=storage.read(spark, result.scores_path).filter(
                scorer.key_condition(data.snapshot, ref.name, ref.version)
            ),
        )
    for line in summary.drift_progress(d):
        report.progress("drift", line)
    out = summary.score_summary(result, d)
    report.add(score=out, drift_warnings=d.warnings)
    lines = summary.score_lines(out, d, cfg.table("drift"))
    realized = run_performance(spark, cfg, report, client)
    return {**out, "drift_warnings": d.warnings, "realized": realized, "summary_lines": lines}


def run_performance(
    spark: SparkSession, cfg: Config, report: Report, client: Any = None
) -> dict[str, Any]:
    """Realized performance of every scored snapshot whose labels have matured and that has
    no row yet: written to monitoring/model_performance and logged on each version's run."""
    from lakeml.monitoring import performance

    t = cfg.train
    paths = {n: cfg.table(n) for n in ("scores", "labels", "performance")}
    with report.stage("performance"):
        p = performance.update(
            spark,
            paths,
            (t.entity_col, t.snapshot_col, t.label_col),
            cfg.monitor.top_k_pct,
            cfg.monitor.calibration_bins,
        )
        if p.rows:
            performance.log_to_mlflow(client or connect_tracking(cfg), p.rows)
    for r in p.rows:
        report.progress("performance", summary.realized_line(r))
    if p.skipped:
        report.progress("performance", p.skipped)
    if p.waiting:
        report.progress("performance", f"waiting for labels: {', '.join(p.waiting)}")
    out = {
        "rows": [summary.realized_row(r) for r in p.rows],
        "table": {"path": paths["performance"], "version": p.table_version},
        "waiting_for_labels": p.waiting,
    }
    report.add(realized=out)
    return out
