from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from scoring_lake import Lake, build_lake

from lakeml.core.config import SparkConfig
from lakeml.core.session import get_spark

CONF = Path(__file__).resolve().parents[1] / "conf" / "local.yaml"
XGB_USERS, XGB_SNAPSHOTS = 100, 6

# `make test` runs the suite in two pytest-xdist workers. A worker's __main__ module has
# neither a spec nor a file, which pyspark.ml.connect (imported by mlflow.spark.log_model)
# takes for a doctest run without Spark Connect and answers with sys.exit(0): the worker
# gets the file name a plain `python -m pytest` would have.
_main = sys.modules["__main__"]
if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__file__ = "pytest-xdist-worker"


# Most tests run many queries on a few rows, where compiling each query's generated Java
# (Janino, then the JIT) costs more than the rows: their expressions are evaluated
# interpreted, a mode Spark's own suites run, with the same results. Modules marked
# `codegen` (the drift check's histograms of 80 features over thousands of rows) get code
# generation back, as do all jobs outside this session: CLI subprocesses, spark-submit, the
# cluster tests, bench. The end-to-end modules ran faster interpreted too (e2e and training:
# 252 against 274 s of CPU, 148 against 156 s).
INTERPRETED = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}
COMPILED = {"spark.sql.codegen.wholeStage": "true", "spark.sql.codegen.factoryMode": "FALLBACK"}

# The JVM's optimizing compiler (C2) for the hottest methods only: ten times HotSpot's
# thresholds (JDK 17: 5,000 calls, 15,000 calls and loops, 40,000 loop iterations). A
# worker's JVM lives for minutes, long enough for C2 to pay back on Spark's planner (the quick
# compiler alone made the suite slower), but at the default thresholds C2 also compiles
# lukewarm code: its thread took 44 of the JVM's 135 CPU seconds on gold's tests. Measured
# 2026-12-06, one run each: the suite in 360.7 s and 667 CPU seconds against 399.1 s and 749;
# gold's and silver's modules alone, alternating, 152-167 against 169-179 CPU seconds, the
# same time.
C2_HOT_ONLY = (
    "-XX:Tier4InvocationThreshold=50000 -XX:Tier4MinInvocationThreshold=6000 "
    "-XX:Tier4CompileThreshold=150000 -XX:Tier4BackEdgeThreshold=400000"
)


# `make test` runs two pytest-xdist workers, each with its own SparkSession, and sends
# them whole modules. The modules that use a lake built once per session (`lake`,
# `xgboost_lake`) go to one worker together, so that each lake is built once; the big
# end-to-end modules start first, so that no worker is left alone with one at the end.
SESSION_LAKES = "session lakes"
DRIVER_START = "driver start"
# A fixture built once per session -> the work unit of every module that uses it.
SHARED = {"lake": SESSION_LAKES, "xgboost_lake": SESSION_LAKES, "driver_start": DRIVER_START}
# The real driver start (tests/core/conftest.py) is read by these modules.
DRIVER_MODULES = {"tests/core/test_class_cache.py", "tests/core/test_session.py"}
LAKE_MODULES = {
    "tests/monitoring/test_monitor.py",
    "tests/monitoring/test_performance.py",
    "tests/reporting/test_report.py",
    "tests/scoring/test_score_crash.py",
    "tests/scoring/test_score_failures.py",
    "tests/scoring/test_scorer.py",
    "tests/serving/test_service.py",
    "tests/training/test_xgboost.py",
}
BIG_FIRST = [
    # `make long-test` only: two whole pipelines in one test, the longest work unit there.
    "tests/e2e/test_two_runs.py",
    SESSION_LAKES,
    "tests/e2e/test_purchases_e2e.py",
    "tests/e2e/test_telco_e2e.py",
    "tests/e2e/test_features_e2e.py",
    "tests/training/test_train.py",
    "tests/ingest/test_silver.py",
    "tests/features/test_gold.py",
    "tests/features/test_gold_runs.py",
    "tests/core/test_concurrent_writes.py",
    DRIVER_START,
]


# Each shared unit's modules, by the name of the list above that holds them.
UNIT_LISTS = {SESSION_LAKES: "LAKE_MODULES", DRIVER_START: "DRIVER_MODULES"}


def work_unit(nodeid: str) -> str:
    """What one xdist worker runs as a whole: a test's module, or all the modules that share
    a fixture built once per session."""
    module = nodeid.split("::")[0]
    return next((u for u, lst in UNIT_LISTS.items() if module in globals()[lst]), module)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The big work units first, each module keeping its own order; a module that uses a
    shared session fixture must be in its unit's list, or a second worker would build it
    again."""
    unlisted = {
        (item.nodeid.split("::")[0], SHARED[name])
        for item in items
        for name in SHARED.keys() & set(item.fixturenames)
        if work_unit(item.nodeid) != SHARED[name]
    }
    if unlisted:
        where = sorted(f"{module} (to {UNIT_LISTS[unit]})" for module, unit in unlisted)
        raise pytest.UsageError(f"add to tests/conftest.py: {', '.join(where)}")
    rank = {unit: i for i, unit in enumerate(BIG_FIRST)}
    items.sort(key=lambda item: rank.get(work_unit(item.nodeid), len(rank)))


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Whole work units to each worker, in the order collected (xdist's own loadscope
    would group by module only, and reorder the modules by their number of tests)."""
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False
    return ByWorkUnit(config, log)


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
                # One task per shuffle: a few rows gain nothing from two, and silver's,
                # gold's and the purchase log's tests took 193 against 207 s of CPU.
                "spark.sql.shuffle.partitions": "1",
                "spark.default.parallelism": "1",
                "spark.ui.enabled": "false",
                "spark.sql.adaptive.enabled": "false",
                "spark.databricks.delta.snapshotPartitions": "1",
                **INTERPRETED,
                # One GC thread: two workers' JVMs share two cores, and the serial
                # collector took 9-15% less CPU than G1 on silver's and gold's tests.
                "spark.driver.extraJavaOptions": f"-XX:+UseSerialGC {C2_HOT_ONLY}",
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
