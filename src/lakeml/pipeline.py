"""The one place that sequences lakeml's stages, prints progress and builds the summary.

Each stage is a function of (session, its config section, its paths) that returns a frozen
dataclass and never prints; the `run_*` functions here call them in order, report progress
and add what the JSON summary needs. The CLI and `jobs/` call these functions. Stage
modules are imported inside the functions, so importing this module (and the CLI) stays
cheap and a config error is reported before pyspark.ml, MLflow or scikit-learn load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakeml import summary
from lakeml.core.config import Config
from lakeml.core.report import Report

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakeml.synthetic.generate import GenerateResult
    from lakeml.synthetic.purchases import PurchaseResult

STEPS = ("features", "train", "score")
# `lakeml pipeline` exit status when no model version passed the gate and none did before:
# there is no champion, so scoring is skipped. Not an error (that is 1 or 2).
NO_CHAMPION = 3


def table_summary(spark: SparkSession, path: str) -> dict[str, Any]:
    """Delta version and row count of a table, for the JSON summary (`storage.describe`)."""
    from lakeml.core import storage

    return storage.describe(spark, path)


def connect_tracking(cfg: Config) -> Any:
    """The MLflow client for the config's store and experiment (created if new)."""
    from lakeml.tracking import store

    return store.connect(cfg.mlflow, cfg.tracking_uri, cfg.artifact_location)


def run_generate(
    spark: SparkSession, cfg: Config, report: Report, output: str | None = None
) -> GenerateResult | PurchaseResult:
    from lakeml.synthetic.generate import generate

    out = output or cfg.source_path
    with report.stage("generate"):
        result = generate(spark, cfg.generate, out)
    report.progress(
        "generate",
        f"{result.lines} lines in {result.files} daily files for {result.users} users -> {out}",
    )
    report.add(raw_path=out, generated=result.as_dict())
    return result


def run_features(
    spark: SparkSession,
    cfg: Config,
    report: Report,
    input_path: str | None = None,
    full_refresh: bool = False,
) -> dict[str, Any]:
    """Raw event logs -> bronze -> silver (+ quarantine) -> gold features and labels."""
    if cfg.source.kind == "table":
        return run_table_features(spark, cfg, report, input_path)
    from lakeml.features import gold
    from lakeml.features.snapshots import LogColumns
    from lakeml.ingest import bronze, silver

    source = input_path or cfg.source_path
    with report.stage("bronze"):
        b = bronze.ingest(spark, source, cfg.table("bronze"), cfg.source.events)
    report.progress("bronze", f"{b.rows} new raw lines from {b.files} new files")
    with report.stage("silver"):
        s = silver.update(
            spark, cfg.table("bronze"), cfg.table("silver"), cfg.table("quarantine"), cfg.source
        )
    report.progress(
        "silver",
        f"{s.silver_inserted} events kept, {s.quarantined} quarantined "
        f"{s.quarantine_by_rule}, {s.duplicates_removed} duplicates removed",
    )
    paths = gold.GoldPaths(
        cfg.table("silver"), cfg.table("quarantine"), cfg.table("features"), cfg.table("labels")
    )
    # Gold finds what silver gained since its own last write in the tables' commits, not in
    # `s`: so a rerun after a crash between the silver and gold writes still catches up.
    with report.stage("gold"):
        log = LogColumns.of(cfg.source.events, cfg.features)
        g = gold.update(spark, cfg.features, paths, log, full_refresh)
    report.progress(
        "gold",
        f"{len(g.snapshots_computed)} snapshots computed, {g.snapshots_total} in all "
        f"({g.labelled_snapshots} labelled)",
    )
    this_run = {
        "bronze_rows": b.rows,
        "bronze_files": b.files,
        # Bronze rows silver read: this run's, plus any an interrupted run left behind.
        "silver_input_rows": s.bronze_rows,
        "silver_inserted": s.silver_inserted,
        "quarantined": s.quarantined,
        "duplicates_removed": s.duplicates_removed,
        "quarantine_by_rule": s.quarantine_by_rule,
        # silver_input_rows = silver_inserted + quarantined + duplicates_removed
        "reconciles": s.reconciles,
        "snapshots_computed": g.snapshots_computed,
    }
    names = ("bronze", "silver", "quarantine", "features", "labels")
    return _features_summary(spark, cfg, report, source, this_run, names)


def run_table_features(
    spark: SparkSession, cfg: Config, report: Report, input_path: str | None = None
) -> dict[str, Any]:
    """A customer snapshot table -> silver (+ quarantine) -> gold features and labels."""
    from lakeml.ingest import customer_table

    source = input_path or cfg.source_path
    names = ("silver", "quarantine", "features", "labels")
    with report.stage("table"):
        t = customer_table.update(
            spark,
            cfg.source.table,
            source,
            cfg.train.snapshot_col,
            cfg.train.label_col,
            {name: cfg.table(name) for name in names},
        )
    report.progress(
        "table",
        f"{t.silver_rows} rows kept, {t.quarantined} quarantined {t.quarantine_by_rule}, "
        f"{t.duplicates_removed} duplicates removed, snapshots {t.snapshots}",
    )
    this_run = {
        "bronze_rows": t.input_rows,
        "silver_inserted": t.silver_rows,
        "quarantined": t.quarantined,
        "duplicates_removed": t.duplicates_removed,
        "quarantine_by_rule": t.quarantine_by_rule,
        "reconciles": t.reconciles,
        "snapshots_computed": t.snapshots,
    }
    return _features_summary(spark, cfg, report, source, this_run, names)


def _features_summary(
    spark: SparkSession,
    cfg: Config,
    report: Report,
    source: str,
    this_run: dict[str, Any],
    names: tuple[str, ...],
) -> dict[str, Any]:
    tables = {name: table_summary(spark, cfg.table(name)) for name in names}
    out = {"input": source, "this_run": this_run, "tables": tables}
    report.add(features=out)
    return out


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


def gather_facts(spark: SparkSession, cfg: Config, client: Any) -> Any:
    from lakeml.monitoring import checks

    names = ("features", "scores", "performance", "drift", "silver", "quarantine")
    return checks.gather(
        spark,
        client,
        cfg.mlflow.registered_model,
        {n: cfg.table(n) for n in names},
        cfg.train.snapshot_col,
    )


# `lakeml monitor` exit statuses: 0 every check holds, 1 a check failed, 2 an error.
CHECK_FAILED = 1


def run_monitor(spark: SparkSession, cfg: Config, report: Report) -> dict[str, Any]:
    """Bring realized performance up to date, run the SLA checks, alert a webhook on failure."""
    import os

    from lakeml.monitoring import checks

    client = connect_tracking(cfg)
    run_performance(spark, cfg, report, client)
    with report.stage("monitor"):
        facts = gather_facts(spark, cfg, client)
        results = checks.sla_checks(facts, cfg.monitor)
    for c in results:
        report.progress("monitor", f"{'ok' if c.ok else 'FAILED'} {c.name}: {c.detail}")
    failed = [c.name for c in results if not c.ok]
    alert: dict[str, Any] = {"sent": False}
    url = os.environ.get(cfg.monitor.webhook_env, "") if cfg.monitor.webhook_env else ""
    if failed and url:
        body = checks.alert_body(results, cfg.mlflow.registered_model, cfg.storage.root)
        error = checks.post_webhook(url, body, cfg.monitor.webhook_timeout_seconds)
        alert = {"sent": error is None, "error": error, "env": cfg.monitor.webhook_env}
        report.progress("monitor", f"alert not sent: {error}" if error else "alert sent")
    elif failed:
        report.progress("monitor", f"no alert sent: {cfg.monitor.webhook_env} is not set")
    out = {
        "ok": not failed,
        "failed": failed,
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in results],
        "alert": alert,
    }
    report.add(monitor=out)
    if failed:
        report.exit_status = CHECK_FAILED
    return out


def run_retrain(
    spark: SparkSession, cfg: Config, report: Report, force: bool = False
) -> dict[str, Any]:
    """Train when the policy says so (champion too old, realized performance below the floors,
    too much drift, no champion) or when forced; otherwise say why not. The gate still decides
    promotion. The decision is logged as an MLflow run."""
    import mlflow

    from lakeml.monitoring import checks

    client = connect_tracking(cfg)
    run_performance(spark, cfg, report, client)
    with report.stage("retrain.decide"):
        facts = gather_facts(spark, cfg, client)
        retrain, reasons = checks.retrain_decision(facts, cfg.monitor, cfg.retrain)
        if force:
            retrain, reasons = True, ["--force", *reasons]
        decision = "retrain" if retrain else "keep"
        with mlflow.start_run(
            run_name=f"retrain decision: {decision}",
            tags={
                "lakeml.kind": "retrain_decision",
                "lakeml.command": "retrain",
                "decision": decision,
                "reasons": "; ".join(reasons),
                "champion_version": str(facts.champion_version),
            },
        ) as run:
            pass
    report.progress(
        "retrain.decide",
        f"{'retraining' if retrain else 'no retraining'}: {'; '.join(reasons)}",
    )
    out = {"decision": decision, "reasons": reasons, "decision_run_id": run.info.run_id}
    report.add(retrain=out)
    if retrain:
        trained = run_train(spark, cfg, report)
        out["train"] = {k: v for k, v in trained.items() if k != "summary_lines"}
    return out


def run_report(
    spark: SparkSession,
    cfg: Config,
    report: Report,
    model_uri: str | None = None,
    snapshot_date: str | None = None,
    fmt: str = "html",
) -> dict[str, Any]:
    """The stakeholder report of a model version's scoring of a snapshot (default: the
    champion's latest): written under `reports/` in the storage root, logged to MLflow on the
    version's run."""
    import datetime as dt
    import tempfile
    from pathlib import Path

    from lakeml.core.errors import LakemlError
    from lakeml.core.files import write_files
    from lakeml.reporting import content, document, facts
    from lakeml.scoring import model_ref

    client = connect_tracking(cfg)
    uri = model_uri or cfg.model_uri
    with report.stage("report"):
        ref = model_ref.resolve_model(client, uri)
        try:
            day = dt.date.fromisoformat(snapshot_date) if snapshot_date else None
        except ValueError:
            raise LakemlError(f"--snapshot-date {snapshot_date!r} is not YYYY-MM-DD") from None
        names = ("scores", "drift", "performance", "silver", "quarantine", "features", "labels")
        r = cfg.report
        f = facts.gather(
            spark,
            client,
            ref,
            {n: cfg.table(n) for n in names},
            day,
            max(r.contacts_shown, r.example_customers),
        )
        title, subtitle = content.title(f)
        parts = content.sections(f, r)
        stem = f"{ref.name}-v{ref.version}-{f.snapshot.isoformat()}"
        if fmt == "md":
            text, files = document.to_markdown(title, subtitle, parts, f"{stem}_files")
        else:
            text, files = document.to_html(title, subtitle, parts), {}
        name = f"{stem}.{fmt}"
        folder = f"{cfg.storage.root.rstrip('/')}/reports"
        write_files(spark, folder, {name: text.encode(), **files})
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / name
            local.write_text(text)
            client.log_artifact(ref.run_id, str(local), "reports")
    path = f"{folder}/{name}"
    report.progress("report", f"{path} (also in MLflow: run {ref.run_id}, reports/{name})")
    out = {"path": path, "model": f"{ref.name} v{ref.version}", "snapshot_date": str(f.snapshot)}
    report.add(report=out)
    return out


def run_models(cfg: Config, report: Report) -> None:
    """Print the versions of the churn model and its baseline, newest first."""
    from lakeml.registry import versions

    name = cfg.mlflow.registered_model
    rows = versions.list_versions(connect_tracking(cfg), [name, f"{name}-baseline"])
    if not rows:
        report.progress("models", f"no versions of {name!r} registered yet; run `lakeml train`")
    else:
        for line in summary.models_table(rows):
            print(line, flush=True)
    report.add(
        registered_model=name, tracking_uri=cfg.tracking_uri, models=summary.rows_as_dicts(rows)
    )


def run_serve(cfg: Config, report: Report, host: str | None, port: int | None) -> None:
    """Serve the champion's scores and live predictions until interrupted."""
    from lakeml.serving import server

    host, port = host or cfg.serve.host, port if port is not None else cfg.serve.port

    def ready(service: Any) -> None:
        c = service.current
        version = f"v{c.champion.version}" if c.champion else "none yet"
        rows = len(c.scores) if c.scores else 0
        report.progress(
            "serve",
            f"http://{host}:{port} ({cfg.mlflow.registered_model} {version}, {rows} scores; "
            "docs at /docs)",
        )

    server.serve(cfg, connect_tracking(cfg), host, port, on_ready=ready)
    report.add(serve={"host": host, "port": port})


def run_promote(cfg: Config, report: Report, version: str, alias: str = "champion") -> None:
    """Point `alias` at `version` by hand (e.g. roll back the champion)."""
    from lakeml.registry import versions

    p = versions.promote(connect_tracking(cfg), cfg.mlflow.registered_model, version, alias)
    report.progress("promote", f"{p.model}@{p.alias}: v{p.previous_version or '-'} -> v{p.version}")
    report.add(
        promoted={
            "model": p.model,
            "alias": p.alias,
            "version": p.version,
            "previous_version": p.previous_version,
            "model_uri": p.model_uri,
        }
    )


def run_pipeline(
    spark: SparkSession,
    cfg: Config,
    report: Report,
    input_path: str | None = None,
    until: str = "score",
) -> dict[str, Any]:
    """generate (only when there is no input) -> features -> train -> gate -> score.

    `until` stops after that step (features, train or score).
    """
    from lakeml.core import files

    source = input_path or cfg.source_path
    if cfg.source.kind == "table":
        # A customer table is data to read, never something to make up: a missing file is
        # the table step's error, not a reason to write synthetic events in its place.
        report.progress("generate", f"skipped: source.kind is table, reading {source}")
    elif input_path is None and not files.has_files(spark, source):
        run_generate(spark, cfg, report)
    else:
        report.progress("generate", f"skipped: using the input at {source}")
    features = run_features(spark, cfg, report, input_path=input_path)
    trained = run_train(spark, cfg, report) if until != "features" else {}
    scored: dict[str, Any] = {}
    if until == "score" and not cfg.score.model_uri and trained["champion"]["version"] is None:
        line = (
            f"no champion: no version of {cfg.mlflow.registered_model} has passed the gate, "
            f"so there is nothing to score with (exit status {NO_CHAMPION})"
        )
        report.progress("score", f"skipped: {line}")
        report.add(score={"skipped": line})
        report.exit_status = NO_CHAMPION
    elif until == "score":
        scored = run_score(spark, cfg, report)
        scored["report_path"] = run_report(spark, cfg, report)["path"]
    print_human_summary(cfg, features, trained, scored)
    return report.summary


# Where `mlflow ui` listens by default.
MLFLOW_UI = "http://127.0.0.1:5000"


def print_human_summary(
    cfg: Config, features: dict[str, Any], trained: dict[str, Any], scored: dict[str, Any]
) -> None:
    """What happened and where to look, for a person, before the JSON line."""
    from lakeml.tracking.ui import experiment_url

    t = features["tables"]
    kept = "silver events" if cfg.source.kind == "events" else "silver rows"
    lines = [
        "",
        "lakeml pipeline summary",
        f"  raw rows read this run: {features['this_run']['bronze_rows']}",
        f"  {kept}: {t['silver']['rows']}, quarantined: {t['quarantine']['rows']}",
        f"  feature rows: {t['features']['rows']}, label rows: {t['labels']['rows']}",
        *[f"  {line}" for line in trained.get("summary_lines", [])],
        *[f"  {line}" for line in scored.get("summary_lines", [])],
        "  where to look:",
        *[f"    {name}: {info['path']}" for name, info in t.items()],
        f"    scores: {cfg.table('scores')}",
        f"    drift: {cfg.table('drift')}",
        f"    realized performance: {cfg.table('performance')}",
        *([f"    report: {report_path}"] if (report_path := scored.get("report_path")) else []),
        f"    MLflow: mlflow ui --backend-store-uri {cfg.tracking_uri}",
        *(
            [f"      then open {experiment_url(MLFLOW_UI, trained['experiment_id'])}"]
            if trained.get("experiment_id")
            else []
        ),
        "",
    ]
    for line in lines:
        print(line, flush=True)
