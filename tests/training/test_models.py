"""Spark ML pipelines and tuning: what a model learns, and the errors a config can cause."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest
from pyspark.ml.classification import LogisticRegressionModel
from pyspark.ml.feature import (
    ImputerModel,
    OneHotEncoderModel,
    StandardScalerModel,
    StringIndexerModel,
    VectorAssembler,
)
from synthetic_gold import write_gold

from lakeml.core.config import ModelSpec, load_config
from lakeml.core.errors import LakemlError
from lakeml.core.report import Report
from lakeml.pipeline import run_train
from lakeml.training import models, tune
from lakeml.training.trainset import WEIGHT_COL, load_training_set

CONF = Path(__file__).resolve().parents[2] / "conf" / "local.yaml"
USERS, SNAPSHOTS = 100, 6
LR = ModelSpec(type="logistic_regression", grid={"regParam": [0.1], "maxIter": [20]})


def train_lr(spark, root: Path, shuffle: bool):
    """Train logistic regression on synthetic tables (labels shuffled if asked) and
    return its outcome on the test window."""
    cfg = load_config(CONF, [f"storage.root={root}"])
    write_gold(
        spark, cfg.table("features"), cfg.table("labels"), USERS, SNAPSHOTS, shuffle_labels=shuffle
    )
    ts = load_training_set(spark, cfg.train, cfg.table("features"), cfg.table("labels"))
    [cand] = models.candidates([LR], cfg.train.label_col, WEIGHT_COL, cfg.train.seed)
    try:
        return tune.train_model(spark, cfg.train, ts, cand)
    finally:
        ts.cached.unpersist()


@pytest.fixture(scope="module")
def real(spark, tmp_path_factory):
    return train_lr(spark, tmp_path_factory.mktemp("real"), shuffle=False)


def test_a_model_learns_the_signal(real):
    assert real.test["roc_auc"] > 0.8
    assert 0.0 < real.threshold < 1.0


def test_a_model_trained_on_shuffled_labels_scores_near_chance(spark, tmp_path):
    # Same features, labels permuted over all rows: nothing can predict them unless the
    # target leaks into the inputs (a join or column bug would show up as a high score).
    shuffled = train_lr(spark, tmp_path, shuffle=True)
    # 100 test users: chance is 0.5 give or take ~0.06 (one standard deviation)
    assert abs(shuffled.test["roc_auc"] - 0.5) < 0.15


def test_one_pipeline_model_scores_raw_rows_with_nulls_and_unseen_categories(spark, real):
    stages = [type(s) for s in real.model.stages]
    assert stages == [
        ImputerModel,
        StringIndexerModel,
        OneHotEncoderModel,
        VectorAssembler,
        StandardScalerModel,
        LogisticRegressionModel,
    ]
    rows = spark.createDataFrame(
        [(None, None, None, None, None, None, None, None), (3, 40, 2, 1, 1.0, "X", "ZZ", "tv")],
        "days_since_last_activity long, songs_7d long, thumbs_down_28d long, is_paid int, "
        "songs_trend double, gender string, state string, platform string",
    )
    scored = real.model.transform(rows).select("probability", "prediction").collect()
    assert all(0.0 < r.probability[1] < 1.0 for r in scored)


def test_feature_weights_are_named_after_columns_and_categories(real):
    names = set(real.weights["feature"])
    assert {"days_since_last_activity", "songs_7d", "gender=M", "state=CA"} <= names
    # the strongest signal in the synthetic data
    assert real.weights["feature"].iloc[0] in {"days_since_last_activity", "songs_7d"}


def test_assembler_slot_names_read_as_features():
    assert models.readable_feature("songs_7d__imputed") == "songs_7d"
    assert models.readable_feature("state__onehot_New York") == "state=New York"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            ModelSpec(type="random_forest", grid={"numTree": [5]}),
            "RandomForestClassifier has no tunable parameter 'numTree'; did you mean 'numTrees'",
        ),
        (
            ModelSpec(type="gbt", grid={"maxDepth": [-1]}),
            r"train.models\[0\].grid: invalid grid value",
        ),
        (
            ModelSpec(type="logistic_regression", grid={"maxIter": ["many"]}),
            "Could not convert many",
        ),
        (
            ModelSpec(type="logistic_regression", grid={"labelCol": ["y"]}),
            "no tunable parameter 'labelCol'",
        ),
        # Unvalidated: ModelSpec itself rejects an unknown type (config tests check that).
    ],
)
def test_bad_model_config_is_a_clear_error(spark, spec, message):
    with pytest.raises(LakemlError, match=message):
        models.candidates([spec], "churned", WEIGHT_COL, 42)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.models=[{type: lightgbm}]", "unknown model type 'lightgbm'"),
        ("train.primary_metric=accuracy", "unknown metric 'accuracy'"),
        ("train.gate.metric=f1", "unknown metric 'f1'"),
    ],
)
def test_unknown_model_type_or_metric_in_config_is_a_clear_error(override, message):
    with pytest.raises(LakemlError, match=message):
        load_config(CONF, [override])


def test_an_unreachable_tracking_server_fails_in_bounded_time(spark, tmp_path):
    # A server that accepts connections but never answers: only the timeout ends the wait.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        cfg = load_config(
            CONF,
            [
                f"storage.root={tmp_path}",
                f"mlflow.tracking_uri=http://127.0.0.1:{port}",
                "mlflow.timeout_seconds=1",
            ],
        )
        with pytest.raises(LakemlError, match=f"http://127.0.0.1:{port} is unreachable"):
            run_train(spark, cfg, Report("train", stream=io.StringIO()))
