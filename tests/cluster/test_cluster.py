"""The whole pipeline submitted to a real Spark standalone cluster with a real MLflow server.

One small run (120 users, 35 days, logistic regression and xgboost) goes through
spark-submit to a master with two 1-core workers, tracking to an `mlflow server` over HTTP.
At the same time the same config and the same packaged code run in local mode, up to
training, with the embedded SQLite store. The generated input and the gold tables must be
identical; the champion's test metrics must agree within a tolerance. The training rows
reach the learners in the same partitions in both modes (hashed by entity and snapshot into
one partition per core: two here), and on 2026-12-03 every model's test metrics agreed to 4
decimals; but executors combine partial results in the order they finish, so floating-point
sums, and with them a close choice between models, may differ slightly while the features
cannot.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pytest
from chispa import assert_df_equality
from cluster_harness import (
    ROOT,
    Command,
    MlflowServer,
    StandaloneCluster,
    get_json,
    run,
    spark_env,
    spark_submit_command,
)
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeml.core.session import QUICK_JIT, delta_maven_coordinate

pytestmark = pytest.mark.cluster

CONF = str(ROOT / "conf" / "cluster.yaml")
LAKEML = [sys.executable, "-m", "lakeml.cli"]
MODEL = "lakeml-churn"
APP_NAME = "lakeml-cluster-test"
# Small enough for a few minutes on two cores, big enough for three labelled snapshots
# (train, validation, test) and a model that passes the gate's floors.
SMALL = [
    "generate.users=120",
    "generate.days=35",
    "train.models=[{type: logistic_regression, grid: {regParam: [0.01]}},"
    " {type: xgboost, grid: {max_depth: [3], n_estimators: [80]}}]",
    "train.baseline.enabled=false",
    "train.gate.min_roc_auc=0.5",
    "train.gate.min_pr_auc=0.0",
    "train.gate.min_pr_auc_lift=0",
]
# The same Spark settings for both runs, on the command line (the YAML leaves them out).
SPARK_CONF = ["--conf", "spark.sql.shuffle.partitions=4", "--conf", "spark.ui.enabled=false"]
# Resources for a submitted app: one executor per worker, 1 core and 1 GB each; the driver's
# and the executors' JVMs with the quick compiler alone, as lakeml gives a driver it launches
# on a small input (`spark.jit`, which the local run sets to quick below): on this test's few
# thousand events the optimizing compiler costs more CPU than its faster code saves (the
# module took 198 s and 342 CPU seconds this way against 254 s and 474, 2026-12-06).
SUBMIT_RESOURCES = [
    "--driver-memory", "1g",
    "--executor-memory", "1g",
    "--total-executor-cores", "2",
    "--driver-java-options", QUICK_JIT,
    "--conf", f"spark.executor.extraJavaOptions={QUICK_JIT}",
    *SPARK_CONF,
]  # fmt: skip
# The champion's test ROC AUC may differ this much between cluster and local mode (see top).
ROC_AUC_TOLERANCE = 0.02
# Not assertions: bounds so that a hung run fails instead of blocking CI.
PIPELINE_TIMEOUT = 1800
ERROR_TIMEOUT = 120


def sets(*assignments: str) -> list[str]:
    return [arg for a in assignments for arg in ("--set", a)]


def summary_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON summary: the last line of lakeml's stdout. spark-submit merges the Python
    driver's stderr into its stdout, so a warning may follow it there."""
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{"')]
    assert lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1])


@dataclass(frozen=True)
class Run:
    root: Path
    tracking_uri: str
    summary: dict[str, Any]
    seconds: float


@pytest.fixture(scope="module")
def runs(
    standalone_cluster: StandaloneCluster,
    mlflow_server: MlflowServer,
    py_files: Path,
    cluster_workdir: Path,
) -> dict[str, Run]:
    """The small pipeline on the cluster and, side by side, in local mode."""
    roots = {name: cluster_workdir / f"{name}-root" for name in ("cluster", "local")}
    cluster_env = spark_env(
        cluster_workdir,
        SPARK_MASTER_URL=standalone_cluster.url,
        LAKEML_ROOT=str(roots["cluster"]),
        MLFLOW_TRACKING_URI=mlflow_server.uri,
        # Where mlflow.spark saves and loads Spark ML models on their way to and from the
        # server: executors write it, the driver reads it (shared storage on a real
        # cluster; this machine's disk here).
        MLFLOW_DFS_TMP=str(cluster_workdir / "mlflow-dfs-tmp-cluster"),
    )
    local_env = spark_env(
        cluster_workdir,
        SPARK_MASTER_URL="local[2]",
        LAKEML_ROOT=str(roots["local"]),
        # The very code the cluster runs, not the working tree as it may be by now.
        PYTHONPATH=str(py_files),
        # What spark-submit gets on its command line, for a session lakeml starts itself.
        PYSPARK_SUBMIT_ARGS=" ".join(["--driver-memory", "2g", *SPARK_CONF, "pyspark-shell"]),
        MLFLOW_DFS_TMP=str(cluster_workdir / "mlflow-dfs-tmp-local"),
    )
    cluster_cmd = spark_submit_command(
        standalone_cluster.url,
        "pipeline",
        ["--conf", CONF, *sets(*SMALL, f"spark.app_name={APP_NAME}")],
        ["--py-files", str(py_files), "--packages", delta_maven_coordinate(), *SUBMIT_RESOURCES],
    )
    # Local mode: Delta jars through the config, the embedded SQLite MLflow store; up to
    # training, all that the comparisons below read (scoring is the cluster run's alone).
    local_cmd = [
        *LAKEML, "pipeline", "--conf", CONF, "--until", "train",
        *sets(*SMALL, "spark.delta_packages=true", "mlflow.tracking_uri=", "spark.jit=quick"),
    ]  # fmt: skip
    logs = cluster_workdir / "logs"
    started = time.monotonic()
    commands = {
        "cluster": Command("cluster-pipeline", cluster_cmd, cluster_env, logs),
        "local": Command("local-pipeline", local_cmd, local_env, logs),
    }
    results, seconds = {}, {}
    try:
        for name, command in commands.items():
            left = PIPELINE_TIMEOUT - (time.monotonic() - started)
            results[name] = command.wait(max(left, 1))
            seconds[name] = round(time.monotonic() - started, 1)
    finally:
        for command in commands.values():
            command.kill()
    for name, proc in results.items():
        assert proc.returncode == 0, f"{name}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    tracking = {
        "cluster": mlflow_server.uri,
        "local": f"sqlite:///{roots['local']}/mlflow/mlflow.db",
    }
    out = {
        name: Run(roots[name], tracking[name], summary_of(results[name]), seconds[name])
        for name in commands
    }
    for name, r in out.items():
        print(f"\n{name} pipeline: done after {r.seconds}s; stages {r.summary['stage_seconds']}")
    return out


@pytest.fixture(scope="module")
def cluster_run(runs: dict[str, Run]) -> Run:
    return runs["cluster"]


@pytest.fixture(scope="module")
def local_run(runs: dict[str, Run]) -> Run:
    return runs["local"]


def test_pipeline_ran_as_an_application_on_both_workers(
    cluster_run: Run, standalone_cluster: StandaloneCluster
) -> None:
    apps = [a for a in standalone_cluster.status()["completedapps"] if a["name"] == APP_NAME]
    assert [a["state"] for a in apps] == ["FINISHED"]
    app_id = apps[0]["id"]
    # Each worker launched an executor for the application: the work was spread out.
    for url in standalone_cluster.worker_ui_urls:
        worker = get_json(f"{url}/json")
        executors = worker["executors"] + worker["finishedexecutors"]
        assert app_id in {e["appid"] for e in executors}, url


def test_champion_is_registered_on_the_tracking_server(
    cluster_run: Run, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    uri = cluster_run.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.tags["gate_decision"] == "promoted"
    assert str(cluster_run.summary["train"]["champion"]["version"]) == champion.version
    # The model's files went through the server's artifact proxy into its destination...
    assert list(mlflow_server.artifacts.rglob("MLmodel")), "no model files on the server"
    # ...and come back from it.
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=client.get_model_version_download_uri(MODEL, champion.version),
        dst_path=str(tmp_path),
        tracking_uri=uri,
    )
    assert "spark" in (Path(local) / "MLmodel").read_text()


def file_digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith((".", "_"))
    }


def test_both_runs_generated_byte_identical_events(cluster_run: Run, local_run: Run) -> None:
    on_cluster = file_digests(cluster_run.root / "raw" / "events")
    assert len(on_cluster) == 35  # generate.days=35: one file per day
    assert on_cluster == file_digests(local_run.root / "raw" / "events")


def differing_columns(left: DataFrame, right: DataFrame, keys: list[str]) -> dict[str, int]:
    """For a failure message: how many rows of each column differ, matched on `keys`."""
    joined = left.alias("l").join(right.alias("r"), on=keys, how="full_outer")
    others = [c for c in left.columns if c not in keys]
    counts = joined.agg(
        *[
            F.sum((~F.col(f"l.{c}").eqNullSafe(F.col(f"r.{c}"))).cast("int")).alias(c)
            for c in others
        ]
    ).first()
    return {c: n for c, n in counts.asDict().items() if n}


@pytest.mark.parametrize("table", ["gold/user_features", "gold/churn_labels"])
def test_gold_tables_equal_local_mode_row_for_row(
    spark: SparkSession, cluster_run: Run, local_run: Run, table: str
) -> None:
    on_cluster = spark.read.format("delta").load(str(cluster_run.root / table))
    local = spark.read.format("delta").load(str(local_run.root / table))
    assert on_cluster.count() > 0
    only_cluster, only_local = (
        on_cluster.exceptAll(local).count(),
        local.exceptAll(on_cluster).count(),
    )
    if only_cluster or only_local:
        diff = differing_columns(on_cluster, local, ["user_id", "snapshot_date"])
        pytest.fail(f"{only_cluster} rows only on the cluster, {only_local} only local: {diff}")
    assert_df_equality(on_cluster, local, ignore_row_order=True)


def test_champion_test_metrics_agree_with_local_mode(cluster_run: Run, local_run: Run) -> None:
    trained = {
        name: r.summary["train"] for name, r in (("cluster", cluster_run), ("local", local_run))
    }
    for model in trained["local"]["models"]:
        metrics = {
            name: {k: t["models"][model]["test_fit_on_train"][k] for k in ("roc_auc", "pr_auc")}
            for name, t in trained.items()
        }
        print(f"\n{model} test metrics (fit on train): {metrics}")
    # xgboost trained one booster across both executors (one task slot each).
    runs = {name: r.tracking_uri for name, r in (("cluster", cluster_run), ("local", local_run))}
    for name, uri in runs.items():
        run_id = trained[name]["run_ids"]["xgboost"]
        params = MlflowClient(tracking_uri=uri).get_run(run_id).data.params
        assert params["num_workers"] == "2", (name, params)
    champions = {name: t["champion"]["test"] for name, t in trained.items()}
    print(f"champion test metrics: {champions}")
    assert trained["cluster"]["winner"] == trained["local"]["winner"]
    diff = champions["cluster"]["roc_auc"] - champions["local"]["roc_auc"]
    assert abs(diff) <= ROC_AUC_TOLERANCE


def assert_one_line_error(
    proc: subprocess.CompletedProcess[str], *fragments: str, stream: str = "stderr"
) -> None:
    """Exit status 2 and exactly one `lakeml <command>: error: ...` line, no traceback.

    lakeml writes the line to stderr; spark-submit (PythonRunner) merges the Python
    driver's stderr into its own stdout, so under spark-submit look there."""
    text = getattr(proc, stream)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    errors = [line for line in text.splitlines() if line.startswith("lakeml ")]
    assert len(errors) == 1, text
    for fragment in fragments:
        assert fragment in errors[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def error_env(workdir: Path, name: str, master: str, tracking_uri: str) -> dict[str, str]:
    return spark_env(
        workdir,
        SPARK_MASTER_URL=master,
        LAKEML_ROOT=str(workdir / name),
        MLFLOW_TRACKING_URI=tracking_uri,
    )


def test_wrong_master_url_fails_in_one_line_under_spark_submit(
    py_files: Path, cluster_workdir: Path
) -> None:
    master = f"spark://127.0.0.1:{closed_port()}"
    env = error_env(cluster_workdir, "wrong-master", master, "http://127.0.0.1:9")
    cmd = spark_submit_command(master, "pipeline", ["--conf", CONF], ["--py-files", str(py_files)])
    proc = run("wrong-master-submit", cmd, env, ERROR_TIMEOUT, cluster_workdir / "logs")
    assert_one_line_error(
        proc, f"Spark master {master} is unreachable", "--master", stream="stdout"
    )


def test_wrong_master_url_fails_in_one_line_when_lakeml_starts_spark(cluster_workdir: Path) -> None:
    master = f"spark://127.0.0.1:{closed_port()}"
    env = error_env(cluster_workdir, "wrong-master", master, "http://127.0.0.1:9")
    cmd = [*LAKEML, "pipeline", "--conf", CONF]
    proc = run("wrong-master-lakeml", cmd, env, ERROR_TIMEOUT, cluster_workdir / "logs")
    assert_one_line_error(proc, f"Spark master {master} is unreachable")


def test_stopped_tracking_server_fails_in_one_line_on_the_cluster(
    standalone_cluster: StandaloneCluster, py_files: Path, cluster_workdir: Path
) -> None:
    """Nothing listens where the server was: train stops before any Spark work."""
    uri = f"http://127.0.0.1:{closed_port()}"
    env = error_env(cluster_workdir, "stopped-server", standalone_cluster.url, uri)
    cmd = spark_submit_command(
        standalone_cluster.url,
        "train",
        ["--conf", CONF, *sets("spark.app_name=lakeml-stopped-server")],
        ["--py-files", str(py_files), *SUBMIT_RESOURCES],
    )
    proc = run("stopped-server", cmd, env, ERROR_TIMEOUT, cluster_workdir / "logs")
    assert_one_line_error(proc, f"MLflow tracking server {uri} is unreachable", stream="stdout")


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port that accepts connections and never answers, like a hung tracking server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def test_hung_tracking_server_fails_in_one_line_after_the_timeout(
    silent_server: str, cluster_workdir: Path
) -> None:
    """Bounded by mlflow.timeout_seconds (3 s here), not by the subprocess's timeout."""
    env = error_env(cluster_workdir, "hung-server", "local[1]", silent_server)
    cmd = [*LAKEML, "models", "--conf", CONF, *sets("mlflow.timeout_seconds=3")]
    proc = run("hung-server", cmd, env, ERROR_TIMEOUT, cluster_workdir / "logs")
    assert_one_line_error(proc, f"MLflow tracking server {silent_server} is unreachable")
