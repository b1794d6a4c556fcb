"""What the report says, read at the edge: the model version and its runs from MLflow, the
scored snapshot, drift, realized performance and the tables' rows and versions from Delta.

Everything is collected into `ReportFacts` (small pandas frames and plain values); rendering
never reads storage.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeml.core import storage
from lakeml.core.errors import LakemlError
from lakeml.registry.gate import CHALLENGER, CHAMPION
from lakeml.scoring.contract import SNAPSHOT
from lakeml.scoring.model_ref import ModelRef
from lakeml.scoring.scorer import PROBABILITY
from lakeml.tracking import tags as tag

LIBRARIES = ("lakeml", "pyspark", "delta-spark", "mlflow", "xgboost-cpu", "scikit-learn", "pandas")


@dataclass
class ReportFacts:
    ref: ModelRef
    model_type: str
    run_metrics: dict[str, float]  # the version's own run (test_*, threshold, ...)
    parent_metrics: dict[str, float]  # its training's parent run (baseline_test_*, champion_*)
    aliases: dict[str, int]  # alias -> version of the registered model
    challenger: dict[str, Any] | None  # the challenger version's tags, when another version
    deciles: pd.DataFrame
    calibration: pd.DataFrame
    drivers: pd.DataFrame | None  # feature, value, kind
    snapshot: dt.date
    scored_rows: int
    scores_version: int | None
    top: pd.DataFrame  # the highest scores of the snapshot: entity, probability, reasons
    entity_col: str
    tables: dict[str, dict[str, Any]]  # name -> path, version, rows
    quarantine_by_rule: dict[str, int]
    drift: pd.DataFrame | None  # feature, psi, null_rate_change, drifted
    score_psi: float | None
    realized: pd.DataFrame | None  # model_performance rows, all versions
    generated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    versions: dict[str, str] = field(default_factory=dict)


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _artifact(client: MlflowClient, run_id: str, name: str) -> pd.DataFrame | None:
    try:
        return pd.read_csv(client.download_artifacts(run_id, name))
    except Exception:  # noqa: BLE001 (an absent artifact is a section left out, not an error)
        return None


def _table_rows(spark: SparkSession, path: str) -> dict[str, Any] | None:
    return storage.describe(spark, path) if storage.exists(spark, path) else None


def score_psi(client: MlflowClient, ref: ModelRef, snapshot: dt.date) -> float | None:
    """The score PSI the drift check of this snapshot and version logged, if any."""
    runs = client.search_runs(
        experiment_ids=[e.experiment_id for e in client.search_experiments()],
        filter_string=(
            "tags.`lakeml.kind` = 'monitoring' and tags.model_name = "
            f"'{ref.name}' and tags.model_version = '{ref.version}' and "
            f"tags.snapshot_date = '{snapshot.isoformat()}'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].data.metrics.get("score_psi") if runs else None


def gather(
    spark: SparkSession,
    client: MlflowClient,
    ref: ModelRef,
    tables: dict[str, str],
    snapshot_date: dt.date | None,
    top_n: int,
) -> ReportFacts:
    """Read everything the report shows about `ref` and its scoring of `snapshot_date` (None:
    the latest snapshot it scored). `tables`: scores, drift, performance, silver, quarantine,
    features, labels paths."""
    run = client.get_run(ref.run_id)
    parent_id = run.data.tags.get("mlflow.parentRunId")
    parent = client.get_run(parent_id).data.metrics if parent_id else {}
    registered = client.get_registered_model(ref.name)
    aliases = {a: int(v) for a, v in (registered.aliases or {}).items()}
    challenger = None
    if aliases.get(CHALLENGER) not in (None, ref.version):
        mv = client.get_model_version(ref.name, str(aliases[CHALLENGER]))
        challenger = {"version": int(mv.version), **dict(mv.tags or {})}
    deciles = _artifact(client, ref.run_id, "deciles.csv")
    calibration = _artifact(client, ref.run_id, "calibration.csv")
    if deciles is None or calibration is None:
        raise LakemlError(
            f"{ref.name} v{ref.version}'s run {ref.run_id} has no deciles.csv/calibration.csv "
            "artifacts; versions registered by `lakeml train` have them"
        )
    drivers = _artifact(client, ref.run_id, "drivers.csv")
    if drivers is None:
        drivers = _artifact(client, ref.run_id, "feature_weights.csv")

    mine = (F.col("model_name") == ref.name) & (F.col("model_version") == ref.version)
    if not storage.exists(spark, tables["scores"]):
        raise LakemlError(f"no scores table at {tables['scores']}: run `lakeml score` first")
    scores = storage.read(spark, tables["scores"]).filter(mine)
    if snapshot_date is None:
        snapshot_date = scores.agg(F.max(SNAPSHOT)).first()[0]
        if snapshot_date is None:
            raise LakemlError(
                f"{ref.name} v{ref.version} has scored no snapshot in {tables['scores']}: run "
                "`lakeml score` first"
            )
    day = scores.filter(F.col(SNAPSHOT) == F.lit(snapshot_date))
    entity = ref.tag(tag.ENTITY_COL, "user_id")
    scored_rows = day.count()
    if scored_rows == 0:
        raise LakemlError(f"{ref.name} v{ref.version} has not scored snapshot {snapshot_date}")
    top = (
        day.orderBy(F.col(PROBABILITY).desc_nulls_last(), F.col(entity))
        .limit(top_n)
        .select(entity, PROBABILITY, "risk_decile", "reasons")
        .toPandas()
    )
    found = {n: _table_rows(spark, p) for n, p in tables.items()}
    by_rule: dict[str, int] = {}
    if found.get("quarantine"):
        by_rule = {
            r["rule"]: r["count"]
            for r in storage.read(spark, tables["quarantine"]).groupBy("rule").count().collect()
        }
    drift = None
    if found.get("drift"):
        drift = (
            storage.read(spark, tables["drift"])
            .filter(mine & (F.col(SNAPSHOT) == F.lit(snapshot_date)))
            .select("feature", "psi", "null_rate_change", "drifted")
            .toPandas()
        )
    realized = None
    if found.get("performance"):
        realized = storage.read(spark, tables["performance"]).toPandas()
    return ReportFacts(
        ref=ref,
        model_type=ref.tags.get(tag.MODEL_TYPE, run.data.tags.get(tag.MODEL_TYPE, "?")),
        run_metrics=dict(run.data.metrics),
        parent_metrics=dict(parent),
        aliases=aliases,
        challenger=challenger,
        deciles=deciles,
        calibration=calibration,
        drivers=drivers,
        snapshot=snapshot_date,
        scored_rows=scored_rows,
        scores_version=found["scores"]["version"] if found.get("scores") else None,
        top=top,
        entity_col=entity,
        tables={n: v for n, v in found.items() if v},
        quarantine_by_rule=by_rule,
        drift=drift,
        score_psi=score_psi(client, ref, snapshot_date),
        realized=realized,
        versions=library_versions(),
    )


def report_path(root: str, ref: ModelRef, snapshot: dt.date, fmt: str) -> Path:
    return Path(root) / "reports" / f"{ref.name}-v{ref.version}-{snapshot.isoformat()}.{fmt}"


__all__ = ["CHAMPION", "ReportFacts", "gather", "report_path"]
