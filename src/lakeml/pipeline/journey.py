"""The whole journey in one run: generate (only when there is no input) -> features -> train
-> gate -> score -> report, and what happened and where to look, for a person.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakeml.core.config import Config
from lakeml.core.report import Report
from lakeml.pipeline.data import run_features, run_generate
from lakeml.pipeline.model import run_score, run_train
from lakeml.pipeline.operations import run_report

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

STEPS = ("features", "train", "score")
# `lakeml pipeline` exit status when no model version passed the gate and none did before:
# there is no champion, so scoring is skipped. Not an error (that is 1 or 2).
NO_CHAMPION = 3


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
