"""Model type `xgboost` (xgboost.spark): early stopping on the validation window, missing
values left to xgboost, workers checked against the session's task slots before any fit."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pyspark.ml.feature import ImputerModel
from synthetic_gold import write_gold

from lakeml.core.config import ModelSpec, XGBoostConfig, load_config
from lakeml.core.errors import LakemlError
from lakeml.training import models, tune
from lakeml.training.trainset import WEIGHT_COL, load_training_set

CONF = Path(__file__).resolve().parents[2] / "conf" / "local.yaml"
USERS, SNAPSHOTS = 100, 6
ROUNDS = 10  # train.xgboost.early_stopping_rounds
XGB = ModelSpec(
    type="xgboost", grid={"max_depth": [2], "n_estimators": [300], "learning_rate": [0.3]}
)


def candidate(cfg, xgb: XGBoostConfig | None = None) -> models.Candidate:
    t = cfg.train
    [cand] = models.candidates(
        [XGB], t.label_col, WEIGHT_COL, t.seed, t.primary_metric, xgb or XGBoostConfig()
    )
    return cand


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("xgb")
    cfg = load_config(CONF, [f"storage.root={root}"])
    write_gold(spark, cfg.table("features"), cfg.table("labels"), USERS, SNAPSHOTS)
    ts = load_training_set(spark, cfg.train, cfg.table("features"), cfg.table("labels"))
    yield cfg, ts
    ts.cached.unpersist()


@pytest.fixture(scope="module")
def tuned(spark, lake):
    cfg, ts = lake
    return tune.train_model(spark, cfg.train, ts, candidate(cfg))


def test_xgboost_learns_the_signal_and_stops_early_on_validation(tuned):
    assert tuned.test["roc_auc"] > 0.8
    [point] = tuned.grid_results
    best = point["best_iteration"]
    booster = tuned.model.stages[-1].get_booster()
    # Early stopping ends training ROUNDS rounds after the best one, well before 300.
    assert booster.num_boosted_rounds() == best + 1 + ROUNDS < 300
    # The refit grows exactly the rounds early stopping kept.
    assert tuned.params["n_estimators"] == best + 1


def test_missing_values_are_left_to_xgboost(spark, tuned):
    assert not any(isinstance(s, ImputerModel) for s in tuned.model.stages)
    rows = spark.createDataFrame(
        [(None, None, None, None, None, None, None, None), (3, 40, 2, 1, 1.0, "X", "ZZ", "tv")],
        "days_since_last_activity long, songs_7d long, thumbs_down_28d long, is_paid int, "
        "songs_trend double, gender string, state string, platform string",
    )
    probabilities = [r["probability"][1] for r in tuned.model.transform(rows).collect()]
    assert all(0.0 < p < 1.0 for p in probabilities)
    assert probabilities[0] != probabilities[1]


def test_the_refit_trains_the_kept_rounds_on_train_and_validation(spark, lake, tuned):
    cfg, ts = lake
    final = tune.refit_winner(cfg.train, ts, candidate(cfg), tuned)
    assert final.model.stages[-1].get_booster().num_boosted_rounds() == tuned.params["n_estimators"]
    assert final.test["roc_auc"] > 0.8
    importances = final.weights
    assert set(importances["kind"]) == {"importance"}
    assert importances["value"].sum() == pytest.approx(1.0)
    # The features that carry the synthetic signal lead (names of raw columns, not slots).
    assert set(importances["feature"].head(3)) <= {
        "days_since_last_activity",
        "songs_7d",
        "thumbs_down_28d",
        "songs_trend",
    }


def test_more_workers_than_task_slots_is_one_line_before_any_fit(spark, lake):
    cfg, ts = lake
    started = time.monotonic()
    with pytest.raises(LakemlError) as raised:
        tune.train_model(spark, cfg.train, ts, candidate(cfg, XGBoostConfig(num_workers=3)))
    assert time.monotonic() - started < 30  # xgboost itself would wait for ever
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("train.xgboost.num_workers is 3 but this Spark session runs 2 ")


def test_a_grid_cannot_set_what_lakeml_wires() -> None:
    spec = ModelSpec(type="xgboost", grid={"num_workers": [4]})
    with pytest.raises(LakemlError, match="SparkXGBClassifier has no tunable parameter"):
        models.candidates([spec], "churned", WEIGHT_COL, 1)


def test_an_xgboost_champion_is_logged_registered_and_scores_its_table(spark, xgboost_lake):
    """Through the same run_train and run_score as every type: gated, registered, loaded
    back from MLflow as a Spark model, and its scores equal its own probabilities."""
    import mlflow
    import mlflow.spark
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    from lakeml.core import storage

    # The lake (tests/conftest.py) ran run_train and run_score on synthetic gold tables.
    cfg, trained = xgboost_lake["cfg"], xgboost_lake["trained"]
    # Tests run since then may have pointed MLflow at their own stores.
    mlflow.set_tracking_uri(cfg.tracking_uri)
    mlflow.set_registry_uri(cfg.tracking_uri)
    assert trained["gate"]["decision"] == "promoted"
    assert trained["champion"]["test"]["roc_auc"] > 0.8
    assert "training-logloss" not in xgboost_lake["train_output"]  # no line per boosting round

    scores = storage.read(spark, cfg.table("scores"))
    last = scores.agg(F.max("snapshot_date")).first()[0]
    model = mlflow.spark.load_model(cfg.model_uri)
    features = storage.read(spark, cfg.table("features")).where(F.col("snapshot_date") == last)
    expected = {
        r["user_id"]: r["p"]
        for r in model.transform(features)
        .select("user_id", vector_to_array("probability")[1].alias("p"))
        .collect()
    }
    got = {r["user_id"]: r["churn_probability"] for r in scores.collect()}
    assert got.keys() == expected.keys() and len(got) == xgboost_lake["users"]
    assert max(abs(got[u] - expected[u]) for u in got) < 1e-6
    # Reasons, read back by delta-rs: raw feature columns, at most score.reasons_top_k.
    from deltalake import DeltaTable

    table = DeltaTable(cfg.table("scores")).to_pandas()
    lists = [list(r) for r in table["reasons"]]
    assert any(lists) and max(len(r) for r in lists) <= cfg.score.reasons_top_k
    raw = {
        "days_since_last_activity", "songs_7d", "thumbs_down_28d", "is_paid", "songs_trend",
        "gender", "state", "platform",
    }  # fmt: skip
    assert {e["feature"] for r in lists for e in r} <= raw
    # The global drivers on the test window: a table and a plot on the champion's run.

    run_id = trained["run_ids"]["xgboost"]
    client = mlflow.MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri)
    logged = {f.path for f in client.list_artifacts(run_id)} | {
        f.path for f in client.list_artifacts(run_id, "plots")
    }
    assert {"drivers.csv", "plots/drivers.png"} <= logged
    drivers = mlflow.artifacts.load_text(f"runs:/{run_id}/drivers.csv").splitlines()
    assert drivers[0] == "feature,value,kind"
    assert {line.split(",")[0] for line in drivers[1:]} <= raw

    # The native booster: one row predicted without Spark equals the Spark model's score,
    # and the version records the parity measured on the whole test window.
    import mlflow.xgboost

    from lakeml.scoring import native
    from lakeml.tracking import tags

    version = client.get_model_version(cfg.mlflow.registered_model, "1")
    assert float(version.tags[tags.NATIVE_PARITY]) <= tags.NATIVE_PARITY_TOLERANCE
    booster = mlflow.xgboost.load_model(version.tags[tags.NATIVE_MODEL_URI])
    enc = mlflow.artifacts.load_dict(version.tags[tags.NATIVE_ENCODING])
    one = features.limit(1).toPandas()
    p = native.probabilities(booster, native.encode(one, enc))[0]
    assert abs(p - got[one["user_id"][0]]) <= 1e-6
