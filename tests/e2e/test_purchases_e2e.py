"""A second, differently shaped log, by YAML alone: a retail purchase log (CSV, ISO times,
inactivity churn) from conf/purchases.yaml through features, training, the gate and scoring.

The labels are recomputed with pandas from the generated CSV files (a second method), and a
model fitted on shuffled labels checks that the features leak nothing about the future.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lakeml.core.config import load_config
from lakeml.core.report import Report
from lakeml.pipeline import run_pipeline

CONF = Path(__file__).resolve().parents[2] / "conf" / "purchases.yaml"
pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def journey(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    root = tmp_path_factory.mktemp("purchases")
    cfg = load_config(
        CONF,
        [
            f"storage.root={root}",
            "generate.users=400",
            "generate.days=126",
            # The wiring, not the grid: one short logistic regression (the YAML's own grid
            # is the user's; the model types are tested in tests/training).
            "train.models=[{type: logistic_regression, grid: {regParam: [0.01], maxIter: [15]}}]",
            "train.baseline.enabled=false",
        ],
    )
    summary = run_pipeline(spark, cfg, Report("pipeline", stream=io.StringIO()))
    return cfg, summary


def clean_events(raw: Path) -> pd.DataFrame:
    """Every well-formed, valid record of the generated files, read with the csv module."""
    rows = []
    for f in sorted(raw.glob("*.csv")):
        for rec in list(csv.reader(f.read_text().splitlines()))[1:]:
            if len(rec) != 7 or not rec[0] or int(rec[4]) < 1:
                continue  # cut short, no customer, or a bad quantity: quarantined
            rows.append((rec[0], datetime.fromisoformat(rec[1]).date(), rec[2]))
    return pd.DataFrame(rows, columns=["customer_id", "day", "type"])


def test_the_purchase_log_runs_end_to_end_from_one_yaml(journey: tuple) -> None:
    cfg, summary = journey
    run = summary["features"]["this_run"]
    generated = summary["generated"]
    assert run["reconciles"] and run["silver_inserted"] == generated["events"]
    assert run["duplicates_removed"] == generated["duplicates"]
    assert run["quarantined"] == (
        generated["malformed"] + generated["missing_field"] + generated["bad_value"]
    )
    train = summary["train"]
    assert train["gate"]["decision"] == "promoted"
    for name, model in train["models"].items():
        assert model["test_fit_on_train"]["roc_auc"] > 0.7, name  # a base-rate ranking: 0.5
    assert summary["score"]["rows_scored"] > 50


def test_labels_equal_inactivity_recomputed_with_pandas(journey: tuple) -> None:
    cfg, _ = journey
    events = clean_events(Path(cfg.source_path))
    labels = DeltaTable(cfg.table("labels")).to_pandas()
    f = cfg.features
    horizon, active = timedelta(days=f.label_horizon_days), timedelta(days=f.active_within_days)
    expected = []
    for s in sorted(labels["snapshot_date"].unique()):
        s = pd.Timestamp(s).date()
        seen = events[(events["day"] >= s - active) & (events["day"] < s)]["customer_id"]
        bought = events[
            (events["type"] == "purchase") & (events["day"] >= s) & (events["day"] < s + horizon)
        ]["customer_id"]
        expected += [(c, s, int(c not in set(bought))) for c in sorted(set(seen))]
    want = pd.DataFrame(expected, columns=["customer_id", "snapshot_date", "churned"])
    got = labels.assign(snapshot_date=labels["snapshot_date"].map(lambda d: pd.Timestamp(d).date()))
    keys = ["customer_id", "snapshot_date"]
    pd.testing.assert_frame_equal(
        got.sort_values(keys, ignore_index=True)[want.columns],
        want.sort_values(keys, ignore_index=True),
        check_dtype=False,
    )
    assert 0.1 < want["churned"].mean() < 0.6


def test_shuffled_labels_teach_nothing_and_true_ones_do(journey: tuple) -> None:
    cfg, _ = journey
    features = DeltaTable(cfg.table("features")).to_pandas()
    labels = DeltaTable(cfg.table("labels")).to_pandas()
    data = features.merge(labels, on=["customer_id", "snapshot_date"])
    test_day = data["snapshot_date"].max()
    numeric = [c for c in features.select_dtypes("number").columns]
    train, test = data[data["snapshot_date"] < test_day], data[data["snapshot_date"] == test_day]
    x_train, x_test = train[numeric].fillna(0), test[numeric].fillna(0)

    def auc(y: np.ndarray) -> float:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
        model.fit(x_train, y)
        return roc_auc_score(test["churned"], model.predict_proba(x_test)[:, 1])

    shuffled = [auc(np.random.default_rng(seed).permutation(train["churned"])) for seed in range(5)]
    assert abs(np.mean(shuffled) - 0.5) < 0.1, shuffled
    assert auc(train["churned"].to_numpy()) > 0.7
