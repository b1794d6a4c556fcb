"""The steps users run, wired from the stages: generate, features, train, score, pipeline.

Each `run_*` reads config, calls the stage functions in order, reports progress and adds
what the JSON summary needs. Stages never import this module.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pyspark.sql import SparkSession

from lakeml.core import storage
from lakeml.core.config import Config
from lakeml.core.report import Report


def raw_files_exist(spark: SparkSession, path: str) -> bool:
    """True if `path` (any Hadoop URI) is a folder holding at least one visible file."""
    jvm = spark._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = hpath.getFileSystem(spark._jsc.hadoopConfiguration())
    if not fs.exists(hpath):
        return False
    return any(not s.getPath().getName().startswith(("_", ".")) for s in fs.listStatus(hpath))


def run_generate(
    spark: SparkSession, cfg: Config, report: Report, output: str | None = None
) -> dict[str, int]:
    from lakeml.synthetic.generate import generate_events

    out = output or cfg.source_path
    with report.stage("generate"):
        stats = generate_events(spark, cfg.generate, out)
    report.progress(
        "generate",
        f"{stats['lines']} lines in {stats['files']} daily files for {stats['users']} users "
        f"-> {out}",
    )
    report.add(raw_path=out, generated=stats)
    return stats


def table_summary(spark: SparkSession, path: str) -> dict[str, Any]:
    """Delta version and row count of a table, for the JSON summary."""
    return {
        "path": path,
        "version": storage.version(spark, path),
        "rows": storage.count(spark, path),
    }


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
    from lakeml.ingest import bronze, silver

    source = input_path or cfg.source_path
    checkpoints = cfg.path(cfg.tables.checkpoints)
    # One bronze checkpoint per input folder, so --input can point at another folder.
    source_key = hashlib.sha1(source.encode()).hexdigest()[:12]
    with report.stage("bronze"):
        b = bronze.ingest(spark, source, cfg.table("bronze"), f"{checkpoints}/bronze/{source_key}")
    report.progress("bronze", f"{b['rows']} new raw lines from {b['files']} new files")
    with report.stage("silver"):
        s = silver.update(
            spark,
            cfg.table("bronze"),
            cfg.table("silver"),
            cfg.table("quarantine"),
            f"{checkpoints}/silver",
        )
    report.progress(
        "silver",
        f"{s['silver_inserted']} events kept, {s['quarantined']} quarantined "
        f"{s['quarantine_by_rule']}, {s['duplicates_removed']} duplicates removed",
    )
    with report.stage("gold"):
        g = gold.update(
            spark,
            cfg,
            cfg.table("silver"),
            cfg.table("features"),
            cfg.table("labels"),
            s["min_new_event_date"],
            full_refresh=full_refresh,
        )
    report.progress(
        "gold",
        f"{len(g['snapshots_computed'])} snapshots computed, {g['snapshots_total']} in all "
        f"({g['labelled_snapshots']} labelled)",
    )
    summary = {
        "input": source,
        "this_run": {
            "bronze_rows": b["rows"],
            "bronze_files": b["files"],
            "silver_inserted": s["silver_inserted"],
            "quarantined": s["quarantined"],
            "duplicates_removed": s["duplicates_removed"],
            "quarantine_by_rule": s["quarantine_by_rule"],
            # Every bronze row this run is accounted for: kept, quarantined or a duplicate.
            "reconciles": s["bronze_rows"]
            == s["silver_inserted"] + s["quarantined"] + s["duplicates_removed"],
            "snapshots_computed": g["snapshots_computed"],
        },
        "tables": {
            name: table_summary(spark, cfg.table(name))
            for name in ("bronze", "silver", "quarantine", "features", "labels")
        },
    }
    report.add(features=summary)
    return summary


def run_table_features(
    spark: SparkSession, cfg: Config, report: Report, input_path: str | None = None
) -> dict[str, Any]:
    """A customer snapshot table -> silver (+ quarantine) -> gold features and labels."""
    from lakeml.ingest import customer_table as snapshot_table

    with report.stage("table"):
        t = snapshot_table.update(spark, cfg, input_path)
    report.progress(
        "table",
        f"{t['silver_rows']} rows kept, {t['quarantined']} quarantined {t['quarantine_by_rule']}, "
        f"{t['duplicates_removed']} duplicates removed, snapshots {t['snapshots']}",
    )
    summary = {
        "input": input_path or cfg.source_path,
        "this_run": {
            "bronze_rows": t["input_rows"],
            "silver_inserted": t["silver_rows"],
            "quarantined": t["quarantined"],
            "duplicates_removed": t["duplicates_removed"],
            "quarantine_by_rule": t["quarantine_by_rule"],
            "reconciles": t["input_rows"]
            == t["silver_rows"] + t["quarantined"] + t["duplicates_removed"],
            "snapshots_computed": t["snapshots"],
        },
        "tables": {
            name: table_summary(spark, cfg.table(name))
            for name in ("silver", "quarantine", "features", "labels")
        },
    }
    report.add(features=summary)
    return summary


def run_train(spark: SparkSession, cfg: Config, report: Report) -> dict[str, Any]:
    from lakeml.training import train

    return train.run(spark, cfg, report)


def run_score(
    spark: SparkSession,
    cfg: Config,
    report: Report,
    model_uri: str | None = None,
    snapshot_date: str | None = None,
    input_path: str | None = None,
) -> dict[str, Any]:
    from lakeml.scoring import scorer as score

    return score.run(
        spark, cfg, report, model_uri=model_uri, snapshot_date=snapshot_date, input_path=input_path
    )


STEPS = ("features", "train", "score")


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
    source = input_path or cfg.source_path
    if cfg.source.kind == "table":
        # A customer table is data to read, never something to make up: a missing file is
        # the table step's error, not a reason to write synthetic events in its place.
        report.progress("generate", f"skipped: source.kind is table, reading {source}")
    elif input_path is None and not raw_files_exist(spark, source):
        run_generate(spark, cfg, report)
    else:
        report.progress("generate", f"skipped: using the input at {source}")
    features = run_features(spark, cfg, report, input_path=input_path)
    if until == "features":
        print_human_summary(cfg, report, features, {}, {})
        return report.summary
    trained = run_train(spark, cfg, report)
    if until == "train":
        print_human_summary(cfg, report, features, trained, {})
        return report.summary
    scored = run_score(spark, cfg, report)
    print_human_summary(cfg, report, features, trained, scored)
    return report.summary


def print_human_summary(
    cfg: Config,
    report: Report,
    features: dict[str, Any],
    trained: dict[str, Any],
    scored: dict[str, Any],
) -> None:
    """What happened and where to look, for a person, before the JSON line."""
    t = features["tables"]
    lines = [
        "",
        "lakeml pipeline summary",
        f"  raw rows read this run: {features['this_run']['bronze_rows']}",
        f"  silver events: {t['silver']['rows']}, quarantined: {t['quarantine']['rows']}",
        f"  feature rows: {t['features']['rows']}, label rows: {t['labels']['rows']}",
    ]
    for line in trained.get("summary_lines", []):
        lines.append(f"  {line}")
    for line in scored.get("summary_lines", []):
        lines.append(f"  {line}")
    lines += [
        "  where to look:",
        *[f"    {name}: {info['path']}" for name, info in t.items()],
        f"    scores: {cfg.table('scores')}",
        f"    drift: {cfg.table('drift')}",
        f"    MLflow: mlflow ui --backend-store-uri {cfg.tracking_uri}",
        "",
    ]
    for line in lines:
        print(line, flush=True)
