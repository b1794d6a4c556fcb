from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from scoring_lake import Lake, build_lake

from lakeml.core.config import SparkConfig
from lakeml.core.session import get_spark

CONF = Path(__file__).resolve().parents[1] / "conf" / "local.yaml"
XGB_USERS, XGB_SNAPSHOTS = 100, 6


# Most tests run many queries on a few rows, where compiling each query's generated Java
# (Janino, then the JIT) costs more than the rows: their expressions are evaluated
# interpreted, a mode Spark's own suites run, with the same results. Modules marked
# `codegen` (thousands of generated rows, model fits) get code generation back, as do
# all jobs outside this session: CLI subprocesses, spark-submit, the cluster tests, bench.
INTERPRETED = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}
COMPILED = {"spark.sql.codegen.wholeStage": "true", "spark.sql.codegen.factoryMode": "FALLBACK"}


@pytest.fixture(scope="module", autouse=True)
def codegen_where_marked(request: pytest.FixtureRequest) -> Iterator[None]:
    """Spark's code generation on for the modules marked `codegen`, off again after them."""
    if request.node.get_closest_marker("codegen") is None:
        yield
        return
    session = request.getfixturevalue("spark")
    for key, value in COMPILED.items():
        session.conf.set(key, value)
    yield
    for key, value in INTERPRETED.items():
        session.conf.set(key, value)


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """One small local SparkSession with Delta for the whole suite."""
    session = get_spark(
        SparkConfig(
            master="local[2]",
            app_name="lakeml-tests",
            log_level="ERROR",
            conf={
                "spark.sql.shuffle.partitions": "2",
                "spark.default.parallelism": "2",
                "spark.ui.enabled": "false",
                "spark.sql.adaptive.enabled": "false",
                "spark.databricks.delta.snapshotPartitions": "1",
                **INTERPRETED,
            },
        )
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def xgboost_lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Synthetic gold tables, an xgboost champion trained, gated and registered by
    `run_train`, and its scores of the latest snapshot by `run_score`: built once for the
    xgboost and the service tests. Tests that change it put it back."""
    import io

    from training.synthetic_gold import write_gold

    from lakeml.core.config import load_config
    from lakeml.core.report import Report
    from lakeml.pipeline import run_score, run_train

    root = tmp_path_factory.mktemp("xgboost-lake")
    models = "train.models=[{type: xgboost, grid: {max_depth: [2], n_estimators: [60]}}]"
    overrides = [f"storage.root={root}", models]
    cfg = load_config(CONF, overrides)
    write_gold(spark, cfg.table("features"), cfg.table("labels"), XGB_USERS, XGB_SNAPSHOTS)
    out = io.StringIO()
    trained = run_train(spark, cfg, Report("train", stream=out))
    run_score(spark, cfg, Report("score", stream=io.StringIO()))
    yield {
        "cfg": cfg,
        "overrides": overrides,
        "users": XGB_USERS,
        "trained": trained,
        "train_output": out.getvalue(),
    }


@pytest.fixture(scope="session")
def lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """One lake (features, two registered models) for the scoring and monitoring tests."""
    return build_lake(spark, tmp_path_factory.mktemp("lake"))


@pytest.fixture(autouse=True)
def mlflow_environment_kept() -> Iterator[None]:
    """MLflow's set_tracking_uri exports MLFLOW_TRACKING_URI, which Config reads as the user's
    choice of store: whatever a test sets there is put back after it."""
    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    before = {k: os.environ.get(k) for k in keys}
    yield
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
