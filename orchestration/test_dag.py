"""The `lakeml_daily` DAG under a real Airflow, from its own venv (`make dag-test`).

Airflow gets a throw-away AIRFLOW_HOME with a SQLite database (no webserver, no scheduler):
the DAG folder must import cleanly, the four steps must run in order, and Airflow itself runs
tasks: the real features task against a tiny generated lake (spark-submit from lakeml's .venv),
and a whole DAG run and a task whose spark-submit is a stand-in that exits with a chosen status.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "orchestration"
STEPS = ["features", "retrain", "score", "monitor"]
AIRFLOW = str(Path(sys.executable).parent / "airflow")
LAKEML = str(ROOT / ".venv" / "bin" / "lakeml")
DATE = "2026-01-01"
# Not assertions: bounds so that a hung run fails instead of blocking CI.
TASK_TIMEOUT = 600

# Before anything imports airflow: it reads AIRFLOW_HOME once, and would otherwise make ~/airflow.
HOME = Path(tempfile.mkdtemp(prefix="lakeml-airflow-"))
atexit.register(shutil.rmtree, HOME, True)
os.environ.update(
    AIRFLOW_HOME=str(HOME),
    AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{HOME / 'airflow.db'}",
)


def task_env(**extra: str) -> dict[str, str]:
    """This environment without the developer's own lakeml, Spark and MLflow settings."""
    prefixes = ("LAKEML_", "SPARK_", "PYSPARK_", "MLFLOW_", "AIRFLOW_VAR_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(extra)
    return env


def airflow(*args: str, status: int = 0, **env: str) -> str:
    """Run the airflow CLI of this venv, expecting exit `status`; its output (with the tasks'
    logs for `tasks test` and `dags test`)."""
    proc = subprocess.run(
        [AIRFLOW, *args],
        env=task_env(**env),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TASK_TIMEOUT,
    )
    assert proc.returncode == status, proc.stdout[-5000:]
    return proc.stdout


def final_state(log: str) -> str:
    """The task instance's last state in a `tasks test` log (the CLI exits 0 either way)."""
    states = re.findall(r"new_state=(\w+)", log)
    assert states, log[-5000:]
    return states[-1]


def summary_of(log: str, command: str) -> dict:
    """lakeml's one-line JSON summary, as the task log carries it."""
    marker = f'{{"command": "{command}"'
    lines = [line for line in log.splitlines() if marker in line]
    assert lines, log[-5000:]
    summary, _ = json.JSONDecoder().raw_decode(lines[-1][lines[-1].index(marker) :])
    return summary


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=DAGS)
    assert bag.import_errors == {}
    # .airflowignore keeps this file out: parsing it would move AIRFLOW_HOME mid-run.
    assert [Path(f).name for f in bag.file_last_changed] == ["lakeml_daily.py"]
    assert bag.dag_ids == ["lakeml_daily"]
    return bag.dags["lakeml_daily"]


@pytest.fixture(scope="module")
def airflow_db() -> None:
    airflow("db", "migrate")


def test_four_steps_in_order_daily(dag) -> None:
    assert [task.task_id for task in dag.topological_sort()] == STEPS
    for upstream, downstream in pairwise(STEPS):
        assert dag.get_task(upstream).downstream_task_ids == {downstream}
    assert not dag.get_task(STEPS[0]).upstream_task_ids
    assert (dag.schedule, dag.catchup, dag.max_active_runs) == ("@daily", False, 1)
    assert {step: dag.get_task(step).retries for step in STEPS} == {
        "features": 1,
        "retrain": 0,
        "score": 1,
        "monitor": 0,
    }
    # Without LAKEML_<STEP>_TIMEOUT_MINUTES: 2 h, 4 h, 2 h, 30 min.
    assert {step: dag.get_task(step).execution_timeout for step in STEPS} == {
        "features": timedelta(hours=2),
        "retrain": timedelta(hours=4),
        "score": timedelta(hours=2),
        "monitor": timedelta(minutes=30),
    }


@pytest.mark.parametrize("value", ["soon", "0", "-5", "inf"])
def test_a_bad_time_limit_is_an_import_error_naming_the_variable(monkeypatch, value) -> None:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("LAKEML_SCORE_TIMEOUT_MINUTES", value)
    bag = DagBag(dag_folder=DAGS)
    [error] = bag.import_errors.values()
    assert f"LAKEML_SCORE_TIMEOUT_MINUTES={value!r}: give the time limit in minutes" in error
    assert bag.dag_ids == []


@pytest.mark.parametrize("step", STEPS)
def test_each_step_submits_its_job(dag, step: str) -> None:
    from airflow.providers.standard.operators.bash import BashOperator

    task = dag.get_task(step)
    assert isinstance(task, BashOperator)
    command = task.bash_command
    assert '"$SPARK_SUBMIT" --master "$SPARK_MASTER"' in command
    assert '--py-files "$LAKEML_HOME/dist/lakeml.zip"' in command
    assert f'"$LAKEML_HOME/jobs/{step}.py" --conf "$LAKEML_CONF"' in command
    assert (ROOT / "jobs" / f"{step}.py").is_file()


def fake_spark_submit(folder: Path, script: str) -> dict[str, str]:
    """Settings that make each task run `script` (sh) for spark-submit: it prints its
    arguments first, and needs no Delta coordinate asked of lakeml's venv."""
    fake = folder / "spark-submit"
    fake.write_text(f'#!/bin/sh\necho "spark-submit $*"\n{script}\n')
    fake.chmod(0o755)
    return {"SPARK_SUBMIT": str(fake), "LAKEML_DELTA_PACKAGES": "io.delta:delta-spark_x:0"}


def submitted(log: str) -> list[str]:
    """The spark-submit command lines the stand-in printed, in order."""
    return re.findall(r"spark-submit (--master .*? --conf \S+)", log)


def test_a_dag_run_submits_the_steps_in_order(airflow_db, tmp_path: Path) -> None:
    """`airflow dags test`: the four steps run one after the other with their jobs; a failed
    SLA check (monitor exits 1, and has no retry) fails the run: that is the alert."""
    fake = fake_spark_submit(tmp_path, 'case "$*" in *jobs/monitor.py*) exit 1;; esac')
    log = airflow("dags", "test", "lakeml_daily", "2026-01-02", status=1, **fake)
    assert submitted(log) == [
        "--master local[*] --packages io.delta:delta-spark_x:0 "
        f"--py-files {ROOT}/dist/lakeml.zip {ROOT}/jobs/{step}.py --conf conf/local.yaml"
        for step in STEPS
    ]
    assert re.findall(r"new_state=(\w+)", log) == ["success", "success", "success", "failed"]
    assert re.search(r"Marking run <DagRun lakeml_daily .*> failed", log), log[-3000:]


def test_a_user_error_is_not_retried(airflow_db, tmp_path: Path) -> None:
    """Exit status 2 (bad config or arguments) fails features at once, though it has a retry
    for everything else. (An Airflow Variable, here from AIRFLOW_VAR_*, sets the master.)"""
    fake = fake_spark_submit(tmp_path, "exit 2")
    log = airflow(
        "tasks", "test", "lakeml_daily", "features", "2026-01-03",
        AIRFLOW_VAR_SPARK_MASTER="local[1]", **fake,
    )  # fmt: skip
    [command] = submitted(log)
    assert command.startswith("--master local[1] ")
    assert final_state(log) == "failed"  # not up_for_retry
    assert "lakeml features exited 2: an error to fix" in log


def test_features_task_builds_the_lake(airflow_db, tmp_path: Path) -> None:
    """`airflow tasks test lakeml_daily features`: spark-submit from lakeml's venv, Delta jars
    and all, on a tiny lake under LAKEML_ROOT (which conf/local.yaml reads)."""
    assert (ROOT / "dist" / "lakeml.zip").is_file(), "run `make package` first"
    root = tmp_path / "lake"
    generate = [
        LAKEML, "generate", "--conf", "conf/local.yaml", "--set", f"storage.root={root}",
        "--set", "generate.users=30", "--set", "generate.days=21",
    ]  # fmt: skip
    subprocess.run(generate, env=task_env(), cwd=ROOT, check=True, capture_output=True)

    # LAKEML_SUBMIT_ARGS as a user sets it, split on spaces: the driver with the JVM's quick
    # compiler alone, as lakeml gives a local driver it launches on a small input (68 against
    # 87 CPU seconds for this test, 2026-12-06). Quoted whole, spark-submit would refuse it.
    quick = "--driver-java-options -XX:TieredStopAtLevel=1"
    log = airflow(
        "tasks", "test", "lakeml_daily", "features", DATE,
        LAKEML_ROOT=str(root), LAKEML_SUBMIT_ARGS=quick,
    )  # fmt: skip

    assert final_state(log) == "success", log[-5000:]
    summary = summary_of(log, "features")
    assert summary["ok"] is True, summary
    assert summary["features"]["tables"]["features"]["path"] == str(root / "gold/user_features")
    assert (root / "gold" / "user_features" / "_delta_log").is_dir()


def test_a_hung_step_is_stopped_at_its_time_limit(airflow_db, tmp_path: Path) -> None:
    """A spark-submit that hangs (for a minute: without a limit the task would succeed and this
    test fail): after LAKEML_MONITOR_TIMEOUT_MINUTES (3 s here) Airflow fails the task, and the
    process is gone, so the next day's run is not held up."""
    pid_file = tmp_path / "spark-submit.pid"
    fake = fake_spark_submit(tmp_path, f"echo $$ > {pid_file}\nexec sleep 60")
    log = airflow(
        "tasks", "test", "lakeml_daily", "monitor", "2026-01-04",
        LAKEML_MONITOR_TIMEOUT_MINUTES="0.05", **fake,
    )  # fmt: skip
    assert final_state(log) == "failed", log[-3000:]
    assert "AirflowTaskTimeout" in log, log[-3000:]
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(pid), f"spark-submit stand-in {pid} still runs"


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
