"""Realized performance: scores joined with matured labels, checked against a pandas
computation of each metric written out by hand (not the scikit-learn calls the code uses)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import types as T
from realized_by_hand import expected

from lakeml.core import storage
from lakeml.monitoring import performance

A, B = date(2018, 11, 5), date(2018, 11, 12)
USERS = 40

SCORES = T.StructType(
    [
        T.StructField("user_id", T.StringType()),
        T.StructField("snapshot_date", T.DateType()),
        T.StructField("churn_probability", T.DoubleType()),
        T.StructField("predicted_churn", T.IntegerType()),
        T.StructField("model_name", T.StringType()),
        T.StructField("model_version", T.IntegerType()),
        T.StructField("run_id", T.StringType()),
    ]
)
LABELS = T.StructType(
    [
        T.StructField("user_id", T.StringType()),
        T.StructField("snapshot_date", T.DateType()),
        T.StructField("churned", T.IntegerType()),
    ]
)


def scored(day: date, version: int, seed: int, labels: pd.Series) -> pd.DataFrame:
    """Distinct probabilities that lean towards the churners, labelled at 0.5."""
    rng = np.random.default_rng(seed)
    p = np.clip(0.25 + 0.3 * labels.to_numpy() + rng.uniform(-0.24, 0.24, USERS), 0.01, 0.99)
    return pd.DataFrame(
        {
            "user_id": [f"u{i:02d}" for i in range(USERS)],
            "snapshot_date": day,
            "churn_probability": p,
            "predicted_churn": (p >= 0.5).astype("int32"),
            "model_name": "churn",
            "model_version": version,
            "run_id": f"run-v{version}",
        }
    )


def write(spark: SparkSession, frame: pd.DataFrame, schema: T.StructType, path: str) -> None:
    rows = frame.astype(object).values.tolist()
    spark.createDataFrame(rows, schema).write.format("delta").mode("append").save(path)


def test_matured_snapshots_get_one_row_per_version_equal_to_pandas(
    spark: SparkSession, tmp_path: Path
) -> None:
    rng = np.random.default_rng(1)
    labels_a = pd.Series((rng.random(USERS) < 0.3).astype("int32"))
    labels_b = pd.Series((rng.random(USERS) < 0.3).astype("int32"))
    paths = {n: str(tmp_path / n) for n in ("scores", "labels", "performance")}
    # Snapshot A scored by versions 1 and 2 and labelled; snapshot B scored, not yet labelled.
    scores = pd.concat(
        [scored(A, 1, 10, labels_a), scored(A, 2, 11, labels_a), scored(B, 2, 12, labels_b)]
    )
    write(spark, scores, SCORES, paths["scores"])
    label_rows = pd.DataFrame(
        {"user_id": [f"u{i:02d}" for i in range(USERS)], "snapshot_date": A, "churned": labels_a}
    )
    write(spark, label_rows, LABELS, paths["labels"])
    columns = ("user_id", "snapshot_date", "churned")

    first = performance.update(spark, paths, columns, 10.0, 10)
    assert [(r["snapshot_date"], r["model_version"]) for r in first.rows] == [(A, 1), (A, 2)]
    assert first.waiting == [B.isoformat()]
    table = storage.read(spark, paths["performance"]).toPandas()
    assert len(table) == 2
    for version in (1, 2):
        mine = scores[(scores.snapshot_date == A) & (scores.model_version == version)]
        joined = mine.merge(label_rows, on=["user_id", "snapshot_date"])
        row = table[table.model_version == version].iloc[0]
        assert row["run_id"] == f"run-v{version}"
        for key, value in expected(joined).items():
            assert row[key] == pytest.approx(value, abs=1e-9), key

    # Idempotent: nothing new has matured, so nothing is written.
    version_before = storage.version(spark, paths["performance"])
    again = performance.update(spark, paths, columns, 10.0, 10)
    assert again.rows == [] and again.skipped == "no matured scored snapshot lacks a row"
    assert storage.version(spark, paths["performance"]) == version_before

    # B's horizon passes: its labels land and only B gets a row.
    write(spark, label_rows.assign(snapshot_date=B, churned=labels_b), LABELS, paths["labels"])
    later = performance.update(spark, paths, columns, 10.0, 10)
    assert [(r["snapshot_date"], r["model_version"]) for r in later.rows] == [(B, 2)]
    table = storage.read(spark, paths["performance"]).toPandas()
    assert len(table) == 3 and later.waiting == []
    b_rows = scores[scores.snapshot_date == B].merge(
        label_rows.assign(snapshot_date=B, churned=labels_b), on=["user_id", "snapshot_date"]
    )
    row = table[table.snapshot_date == B].iloc[0]
    assert row["roc_auc"] == pytest.approx(expected(b_rows)["roc_auc"], abs=1e-9)


def test_one_class_snapshots_have_no_rank_metrics_and_rows_reach_the_versions_run(
    tmp_path: Path,
) -> None:
    one_class = pd.DataFrame({"__label": [0, 0, 0], "churn_probability": [0.1, 0.7, 0.4]})
    one_class["predicted_churn"] = [0, 1, 0]
    m = performance.group_metrics(one_class, 10.0, 10)
    assert m["roc_auc"] is None and m["pr_auc"] is None and m["capture_at_threshold"] is None
    # |0.1 - 0| * 1/3 + |0.7 - 0| * 1/3 + |0.4 - 0| * 1/3 = 0.4
    assert m["calibration_error"] == pytest.approx(0.4)

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    run = client.create_run(client.create_experiment("perf"))
    row = {"snapshot_date": A, "run_id": run.info.run_id, "rows": 3, "positives": 0, **m}
    assert performance.log_to_mlflow(client, [row, {**row, "run_id": None}]) == 1
    history = client.get_metric_history(run.info.run_id, "realized_calibration_error")
    assert [(h.step, round(h.value, 9)) for h in history] == [(20181105, 0.4)]
    assert client.get_metric_history(run.info.run_id, "realized_roc_auc") == []


def test_scoring_measures_a_snapshot_whose_labels_exist_as_pandas_does(xgboost_lake) -> None:
    from deltalake import DeltaTable

    cfg = xgboost_lake["cfg"]
    champion = xgboost_lake["trained"]["champion"]["version"]
    read = {n: DeltaTable(cfg.table(n)).to_pandas() for n in ("scores", "labels", "performance")}
    perf = read["performance"]
    row = perf[perf.model_version == champion].iloc[0]
    scores = read["scores"]
    mine = scores[(scores.model_version == champion) & (scores.snapshot_date == row.snapshot_date)]
    joined = mine.merge(read["labels"], on=["user_id", "snapshot_date"])
    assert len(joined) == xgboost_lake["users"] == row["rows"]
    for key, value in expected(joined).items():
        assert row[key] == pytest.approx(value, abs=1e-9), key
    # The synthetic tables label every snapshot, so the scored one is the test window: the
    # realized ROC AUC is the test ROC AUC training measured on the same rows.
    assert row["roc_auc"] == pytest.approx(
        xgboost_lake["trained"]["challenger"]["test"]["roc_auc"], abs=1e-4
    )
    client = MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri)
    history = client.get_metric_history(row["run_id"], "realized_roc_auc")
    assert [h.step for h in history] == [int(row["snapshot_date"].strftime("%Y%m%d"))]
