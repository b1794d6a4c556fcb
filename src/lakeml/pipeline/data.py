"""The data's part of the journey: synthetic events when there are none, then raw event logs
(or a customer table) -> bronze -> silver (+ quarantine) -> gold features and labels.

Stage modules are imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakeml.core.config import Config
from lakeml.core.report import Report

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakeml.synthetic.generate import GenerateResult
    from lakeml.synthetic.purchases import PurchaseResult


def table_summary(spark: SparkSession, path: str) -> dict[str, Any]:
    """Delta version and row count of a table, for the JSON summary (`storage.describe`)."""
    from lakeml.core import storage

    return storage.describe(spark, path)


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
