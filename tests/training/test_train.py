"""End to end: two trainings on synthetic gold tables, one isolated MLflow store."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import mlflow
import pytest
from chispa import assert_df_equality
from mlflow.tracking import MlflowClient
from synthetic_gold import LABEL_SCHEMA, snapshot_dates, synthetic_frames, to_spark, write_gold

from lakeml.core.config import load_config
from lakeml.core.report import Report
from lakeml.core.session import QUICK_JIT
from lakeml.pipeline import run_train
from lakeml.registry.versions import alias_version
from lakeml.training.trainset import load_training_set

CONF = Path(__file__).resolve().parents[2] / "conf" / "local.yaml"
USERS, SNAPSHOTS = 80, 6
# Small grids: the tests are about the plumbing, not the models.
MODELS = (
    "train.models=[{type: logistic_regression, grid: {regParam: [0.01, 0.1], maxIter: [20]}},"
    " {type: random_forest, grid: {numTrees: [5], maxDepth: [3]}}]"
)
CONTRACT_TAGS = [
    "threshold",
    "entity_col",
    "snapshot_col",
    "label_col",
    "features_path",
    "features_version",
    "labels_path",
    "labels_version",
    "train_snapshots",
    "validation_snapshots",
    "test_snapshots",
    "gate_decision",
    "gate_reasons",
    "test_roc_auc",
    "test_pr_auc",
]


@pytest.fixture(scope="module")
def trained(spark, tmp_path_factory):
    """Train twice on unchanged data; keep both summaries and the progress text."""
    root = tmp_path_factory.mktemp("train")
    cfg = load_config(CONF, [f"storage.root={root}", MODELS])
    write_gold(spark, cfg.table("features"), cfg.table("labels"), USERS, SNAPSHOTS)
    runs = []
    for _ in range(2):
        out = io.StringIO()
        runs.append((run_train(spark, cfg, Report("train", stream=out)), out.getvalue()))
    return cfg, runs


def client_for(cfg) -> MlflowClient:
    return MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri)


def test_first_training_becomes_champion_and_challenger(trained):
    cfg, [(first, _), _] = trained
    name = cfg.mlflow.registered_model
    assert first["gate"]["decision"] == "promoted"
    assert "no champion yet" in first["gate"]["reasons"]
    assert first["champion"] == {
        "model_uri": f"models:/{name}@champion",
        "version": first["challenger"]["version"],
        "test": first["challenger"]["test"],
    }


def test_retraining_on_unchanged_data_does_not_move_the_champion(trained):
    cfg, [(first, _), (second, _)] = trained
    client, name = client_for(cfg), cfg.mlflow.registered_model
    assert second["gate"]["decision"] == "rejected"
    assert "does not beat it by gate.margin 0.01" in second["gate"]["reasons"][-1]
    assert str(alias_version(client, name, "champion").version) == str(
        first["challenger"]["version"]
    )
    assert str(alias_version(client, name, "challenger").version) == str(
        second["challenger"]["version"]
    )
    # the champion was re-scored on this run's test window: same data, same numbers
    assert second["champion"]["test"]["pr_auc"] == first["challenger"]["test"]["pr_auc"]


def test_model_versions_carry_the_contract_tags(trained):
    cfg, [(first, _), (second, _)] = trained
    client, name = client_for(cfg), cfg.mlflow.registered_model
    mv = client.get_model_version(name, str(first["challenger"]["version"]))
    assert set(CONTRACT_TAGS) <= set(mv.tags)
    last, before = snapshot_dates(SNAPSHOTS)[-1], snapshot_dates(SNAPSHOTS)[-2]
    assert mv.tags["test_snapshots"] == last.isoformat()
    assert mv.tags["validation_snapshots"] == before.isoformat()
    assert (mv.tags["features_version"], mv.tags["labels_version"]) == ("0", "0")
    assert mv.tags["features_path"] == cfg.table("features")
    assert mv.tags["entity_col"] == "user_id"
    assert mv.tags["gate_decision"] == "promoted"
    assert 0.0 < float(mv.tags["threshold"]) < 1.0
    # the summary rounds to 4 places
    roc = first["challenger"]["test"]["roc_auc"]
    assert float(mv.tags["test_roc_auc"]) == pytest.approx(roc, abs=1e-4)
    rejected = client.get_model_version(name, str(second["challenger"]["version"]))
    assert rejected.tags["gate_decision"] == "rejected"
    base = client.get_model_version(f"{name}-baseline", str(first["baseline"]["version"]))
    assert base.tags["gate_decision"] == "baseline"
    assert set(CONTRACT_TAGS) <= set(base.tags)


def test_summary_has_what_the_json_line_needs(trained):
    cfg, [(first, progress), _] = trained
    assert first["tracking_uri"] == cfg.tracking_uri
    assert first["experiment"] == cfg.mlflow.experiment
    assert set(first["run_ids"]) == {"logistic_regression", "random_forest", "baseline"}
    assert set(first["models"]) == {"logistic_regression", "random_forest"}
    # the baseline's test metrics sit next to the champion's, on the same test window
    assert first["baseline"]["test"]["roc_auc"] > 0.75
    assert first["champion"]["test"]["roc_auc"] > 0.75
    assert first["rows"] == {"train": 4 * USERS, "validation": USERS, "test": USERS}
    json.dumps(first)  # the summary is JSON-ready
    for stage in ("train.data", "train.tune", "train.refit", "train.log", "train.gate"):
        assert f"[lakeml] {stage}: done in" in progress


def test_runs_hold_params_metrics_plots_deciles_config_and_lineage(trained):
    cfg, [(first, _), _] = trained
    client = client_for(cfg)
    parent = client.get_run(first["parent_run_id"])
    assert parent.data.tags["config_digest"] == cfg.digest()
    assert parent.data.tags["git_commit"]
    assert parent.data.params["class_weight"] == "balanced"
    assert "test_roc_auc" in parent.data.metrics and "threshold" in parent.data.metrics
    assert "baseline_test_roc_auc" in parent.data.metrics
    sources = {d.dataset.name: json.loads(d.dataset.source) for d in parent.inputs.dataset_inputs}
    assert sources == {
        "gold_features": {"path": cfg.table("features"), "delta_table_version": 0},
        "gold_labels": {"path": cfg.table("labels"), "delta_table_version": 0},
    }
    assert "config.yaml" in {f.path for f in client.list_artifacts(parent.info.run_id)}
    # artifacts live under storage.root, not in the working directory
    assert parent.info.artifact_uri.startswith(Path(cfg.path("mlflow/artifacts")).as_uri())
    for model_type, run_id in first["run_ids"].items():
        files = {f.path for f in client.list_artifacts(run_id)}
        assert {"deciles.csv", "deciles.json", "calibration.csv", "feature_weights.csv"} <= files
        plots = {f.path for f in client.list_artifacts(run_id, "plots")}
        assert {f"plots/{p}.png" for p in ("roc", "pr", "calibration", "deciles")} <= plots
        run = client.get_run(run_id)
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert "test_pr_auc" in run.data.metrics, model_type


def test_champion_is_logged_with_a_signature_and_explicit_requirements(trained):
    cfg, [(first, _), _] = trained
    uri = f"models:/{cfg.mlflow.registered_model}@champion"
    mlflow.set_tracking_uri(cfg.tracking_uri)
    mlflow.set_registry_uri(cfg.tracking_uri)
    info = mlflow.models.get_model_info(uri)
    inputs = {c["name"]: c["type"] for c in info.signature.inputs.to_dict()}
    assert inputs["days_since_last_activity"] == "long"
    assert inputs["songs_trend"] == "double"
    assert inputs["is_paid"] == "integer"
    assert inputs["gender"] == "string"
    assert "user_id" not in inputs and "churned" not in inputs
    requirements = Path(mlflow.artifacts.download_artifacts(f"{uri}/requirements.txt"))
    assert "pyspark==" in requirements.read_text()


FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    import mlflow, mlflow.spark
    import pandas as pd
    from pyspark.sql import SparkSession

    uri, name = sys.argv[1], sys.argv[2]
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    rows = pd.DataFrame({
        "days_since_last_activity": [29, 0], "songs_7d": [5, 80], "thumbs_down_28d": [9, 0],
        "is_paid": pd.array([0, 1], dtype="int32"), "songs_trend": [None, 1.2],
        "gender": ["M", None], "state": ["CA", "unseen-state"], "platform": ["mac", "mac"],
    })
    predicted = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(rows)
    print("pyfunc", [float(x) for x in predicted])
    spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
    spark = spark.getOrCreate()
    model = mlflow.spark.load_model(f"models:/{name}@champion")
    scored = model.transform(spark.createDataFrame(rows)).select("probability").collect()
    print("spark", [round(float(r.probability[1]), 4) for r in scored])
    proba = mlflow.pyfunc.load_model(f"models:/{name}-baseline/1").predict(rows)
    print("baseline", [round(float(p), 4) for p in proba[:, -1]])
    """
)


def test_a_fresh_process_loads_the_champion_and_predicts(trained, tmp_path):
    cfg, _ = trained
    # A script file, not `python -c`: loading a Spark model under -c exits early.
    script = tmp_path / "load_champion.py"
    script.write_text(FRESH_PROCESS)
    # Its driver with the quick compiler alone, as lakeml gives a driver it launches on a small
    # input (mlflow.spark starts this one through pyspark, which reads PYSPARK_SUBMIT_ARGS).
    quick = f"--driver-java-options {QUICK_JIT} pyspark-shell"
    result = subprocess.run(
        [sys.executable, str(script), cfg.tracking_uri, cfg.mlflow.registered_model],
        env={**os.environ, "PYSPARK_SUBMIT_ARGS": quick},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " [" in line)
    assert json.loads(lines["pyfunc"]) == [1.0, 0.0]
    spark_p = json.loads(lines["spark"])
    baseline_p = json.loads(lines["baseline"])
    # an inactive, disliking user scores far above an active one, in both models
    assert spark_p[0] > 0.5 > spark_p[1]
    assert baseline_p[0] > 0.5 > baseline_p[1]


def test_a_runs_training_set_is_rebuilt_from_its_recorded_delta_versions(spark, trained):
    """Runs last in this module: it changes the tables."""
    cfg, [(first, _), _] = trained
    mv = client_for(cfg).get_model_version(
        cfg.mlflow.registered_model, str(first["challenger"]["version"])
    )
    # The labels as the synthetic generator wrote them: what the run trained on.
    _, labels = synthetic_frames(USERS, SNAPSHOTS)
    expected = spark.createDataFrame(labels.astype(object).values.tolist(), LABEL_SCHEMA)

    # The tables move on: a new snapshot is appended, and one snapshot's labels rewritten.
    new_day = date(2018, 12, 31)
    more_f, more_l = synthetic_frames(USERS, 1, seed=9, start=new_day)
    f_df, l_df = to_spark(spark, more_f, more_l, 0)
    f_df.write.format("delta").mode("append").save(cfg.table("features"))
    flipped = expected.where(expected["snapshot_date"] == snapshot_dates(SNAPSHOTS)[0])
    flipped = flipped.selectExpr("user_id", "snapshot_date", "1 - churned AS churned")
    flipped.write.format("delta").mode("overwrite").option(
        "replaceWhere", f"snapshot_date = '{snapshot_dates(SNAPSHOTS)[0]}'"
    ).save(cfg.table("labels"))
    l_df.write.format("delta").mode("append").save(cfg.table("labels"))

    rebuilt = load_training_set(
        spark,
        cfg.train,
        cfg.table("features"),
        cfg.table("labels"),
        int(mv.tags["features_version"]),
        int(mv.tags["labels_version"]),
    )
    keys = ["user_id", "snapshot_date", "churned"]
    assert_df_equality(
        rebuilt.df.select(*keys), expected, ignore_row_order=True, ignore_nullable=True
    )
    current = load_training_set(spark, cfg.train, cfg.table("features"), cfg.table("labels"))
    assert current.lineage.features_version > rebuilt.lineage.features_version
    assert current.df.count() == (SNAPSHOTS + 1) * USERS
    rebuilt.cached.unpersist()
    current.cached.unpersist()
