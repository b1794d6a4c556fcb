"""The operational commands over a trained model: monitor (SLA checks and the alert), retrain
(by policy), report (the stakeholder report), models (list versions), serve and promote.

Like the journey's functions, each calls stages in order and reports progress; stage modules
are imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakeml import summary
from lakeml.core.config import Config
from lakeml.core.report import Report
from lakeml.pipeline.model import connect_tracking, run_performance, run_train

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


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
