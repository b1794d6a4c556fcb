"""lakeml's daily run as an Airflow DAG: features -> retrain -> score -> monitor.

Each task submits one of lakeml's thin entry points, `jobs/<step>.py`, with `spark-submit`
from lakeml's own virtual environment, exactly as on a cluster (docs/cluster.md). Airflow runs
from another one (`.venv-airflow`, `orchestration/requirements.txt`): the two never share pins.

Settings, read when a task runs: an Airflow Variable of that name (`airflow variables set ...`
or `AIRFLOW_VAR_<NAME>`), else the environment variable, else the default.

  LAKEML_HOME            the lakeml checkout: jobs/, dist/lakeml.zip (`make package`), .venv;
                         default: the folder above this file
  LAKEML_CONF            lakeml's config, relative to LAKEML_HOME or absolute; conf/local.yaml
  SPARK_MASTER           spark-submit --master; local[*]
  SPARK_SUBMIT           $LAKEML_HOME/.venv/bin/spark-submit
  PYSPARK_PYTHON         the executors' Python, with lakeml's dependencies;
                         $LAKEML_HOME/.venv/bin/python
  PYSPARK_DRIVER_PYTHON  the driver's Python; $LAKEML_HOME/.venv/bin/python
  LAKEML_DELTA_PACKAGES  the Delta jars' Maven coordinate for --packages; default: asked of
                         lakeml's .venv (lakeml.core.session.delta_maven_coordinate)
  LAKEML_SUBMIT_ARGS     more spark-submit arguments, split on spaces (resources, --archives)

Anything else reaches lakeml through the environment, e.g. LAKEML_ROOT (`storage.root` in
conf/local.yaml) or MLFLOW_TRACKING_URI.

Time limits, read when the DAG file is parsed (so from the environment of Airflow's DAG
processor, not from Variables): LAKEML_<STEP>_TIMEOUT_MINUTES, e.g.
LAKEML_FEATURES_TIMEOUT_MINUTES=90; defaults in TIMEOUT_MINUTES below. A step that runs longer
is stopped (SIGTERM to its spark-submit's process group) and fails, so a hung job cannot hold
the one active run, and with it every later day, forever; features and score then retry once.

Exit statuses: 0 is success (`lakeml retrain` also exits 0 when it decides not to retrain);
`lakeml monitor` exits 1 when an SLA check fails, which fails its task: that is the alert;
2 is an error for the user to fix (config, arguments, input; for monitor, any error): it fails the
task at once, without the retries, which could not fix it.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Variable
from airflow.sdk.exceptions import AirflowException, AirflowFailException

STEPS = ("features", "retrain", "score", "monitor")
# A failed feature build or scoring run is retried once (a lost executor, a busy file system);
# training is long and fails for reasons a rerun does not change; a failed monitor check is the
# alert and must not be retried into silence.
RETRIES = {"features": 1, "retrain": 0, "score": 1, "monitor": 0}
USER_ERROR = 2
# Generous for the daily batch; a step past its limit is hung or needs a bigger cluster.
TIMEOUT_MINUTES = {"features": 120.0, "retrain": 240.0, "score": 120.0, "monitor": 30.0}

# Under spark-submit the driver JVM exists before lakeml builds its session, so the Delta jars
# must come on the submit command (lakeml's session config cannot add them then).
SUBMIT = """\
set -euo pipefail
cd "$LAKEML_HOME"
delta="${{LAKEML_DELTA_PACKAGES:-$("$LAKEML_HOME/.venv/bin/python" -c \
'from lakeml.core.session import delta_maven_coordinate; print(delta_maven_coordinate())')}}"
"$SPARK_SUBMIT" --master "$SPARK_MASTER" --packages "$delta" \
  --py-files "$LAKEML_HOME/dist/lakeml.zip" $LAKEML_SUBMIT_ARGS \
  "$LAKEML_HOME/jobs/{step}.py" --conf "$LAKEML_CONF"
"""


def setting(name: str, default: str) -> str:
    """An Airflow Variable, else the environment variable, else `default`."""
    return Variable.get(name, default=os.environ.get(name) or default)


def settings() -> dict[str, str]:
    """The environment each task adds to its own (the settings listed at the top)."""
    home = setting("LAKEML_HOME", str(Path(__file__).resolve().parents[1]))
    venv = Path(home) / ".venv" / "bin"
    env = {
        "LAKEML_HOME": home,
        "LAKEML_CONF": setting("LAKEML_CONF", "conf/local.yaml"),
        "SPARK_MASTER": setting("SPARK_MASTER", "local[*]"),
        "SPARK_SUBMIT": setting("SPARK_SUBMIT", str(venv / "spark-submit")),
        "PYSPARK_PYTHON": setting("PYSPARK_PYTHON", str(venv / "python")),
        "PYSPARK_DRIVER_PYTHON": setting("PYSPARK_DRIVER_PYTHON", str(venv / "python")),
        "LAKEML_SUBMIT_ARGS": setting("LAKEML_SUBMIT_ARGS", ""),
    }
    delta = setting("LAKEML_DELTA_PACKAGES", "")
    if delta:
        env["LAKEML_DELTA_PACKAGES"] = delta
    return env


def timeout(step: str) -> timedelta:
    """The step's time limit: LAKEML_<STEP>_TIMEOUT_MINUTES (minutes, > 0), else the default."""
    name = f"LAKEML_{step.upper()}_TIMEOUT_MINUTES"
    text = os.environ.get(name, "").strip()
    if not text:
        return timedelta(minutes=TIMEOUT_MINUTES[step])
    try:
        minutes = float(text)
    except ValueError:
        minutes = float("nan")
    if not minutes > 0 or minutes == float("inf"):
        raise ValueError(f"{name}={text!r}: give the time limit in minutes, a number above 0")
    return timedelta(minutes=minutes)


class LakemlStep(BashOperator):
    """`spark-submit jobs/<step>.py`: settings resolved when it runs; exit status 2 not retried;
    stopped after its time limit (`timeout`)."""

    def __init__(self, *, step: str, **kwargs) -> None:
        super().__init__(
            task_id=step,
            bash_command=SUBMIT.format(step=step),
            append_env=True,
            # Every non-zero status is a failure (BashOperator skips on 99 by default).
            skip_on_exit_code=None,
            # The last line of output is a Spark log line as often as lakeml's JSON summary.
            do_xcom_push=False,
            retries=RETRIES[step],
            execution_timeout=timeout(step),
            **kwargs,
        )

    def execute(self, context):
        self.env = settings()
        try:
            return super().execute(context)
        except AirflowException:
            process = self.subprocess_hook.sub_process
            if process is not None and process.returncode == USER_ERROR:
                raise AirflowFailException(
                    f"lakeml {self.task_id} exited {USER_ERROR}: an error to fix (config, "
                    "arguments, input: see the log above), not retried"
                ) from None
            raise


with DAG(
    dag_id="lakeml_daily",
    description="lakeml: features -> retrain -> score -> monitor, spark-submit from lakeml's venv",
    schedule="@daily",
    start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retry_delay": timedelta(minutes=5)},
    tags=["lakeml"],
) as dag:
    features, retrain, score, monitor = (LakemlStep(step=step) for step in STEPS)
    features >> retrain >> score >> monitor
