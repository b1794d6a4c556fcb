"""Start and stop a real Spark standalone cluster and MLflow server on this machine.

Every process runs in its own process group with its output in a log file under the
harness's work folder; `stop()` ends the whole group (the Spark worker's executors and
their Python workers included), so nothing outlives the test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyspark

ROOT = Path(__file__).resolve().parents[2]
SPARK_HOME = Path(pyspark.__file__).resolve().parent
SPARK_CLASS = SPARK_HOME / "bin" / "spark-class"
SPARK_SUBMIT = SPARK_HOME / "bin" / "spark-submit"
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def spark_env(workdir: Path, **extra: str) -> dict[str, str]:
    """Environment for Spark processes: this pyspark as SPARK_HOME, loopback only, no
    site configuration leaking in, this interpreter for drivers and executors."""
    conf_dir, tmp = workdir / "spark-conf", workdir / "tmp"
    for folder in (conf_dir, tmp):
        folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "SPARK_"))}
    env.update(
        SPARK_HOME=str(SPARK_HOME),
        SPARK_CONF_DIR=str(conf_dir),
        SPARK_LOCAL_IP=HOST,
        SPARK_LOG_DIR=str(workdir / "logs"),
        # Scratch space (shuffle files, Python temp files) inside the folder that is removed.
        SPARK_LOCAL_DIRS=str(tmp),
        TMPDIR=str(tmp),
        SPARK_DAEMON_MEMORY="512m",
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
    )
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(extra)
    return env


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read().decode())


class Service:
    """One long-running background process with its output in `log`."""

    def __init__(self, name: str, cmd: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.name, self.cmd, self.env, self.log = name, list(cmd), env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, ended as one in stop()
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_seconds: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL what is left after `grace_seconds`."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group id is the leader's pid
        for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            # The leader is gone; members of its group (executors) may linger a moment.
            if not _group_alive(pgid):
                break
        self.proc = None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(
    what: str, ready: Callable[[], bool], services: Sequence[Service], timeout: float
) -> None:
    """Poll `ready` until true; fail early, with the logs, if a service exits meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for service in services:
            if not service.alive():
                raise RuntimeError(
                    f"{service.name} exited while waiting for {what}:\n{service.tail()}"
                )
        try:
            if ready():
                return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.5)
    logs = "\n".join(f"--- {s.name}\n{s.tail()}" for s in services)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")


class StandaloneCluster:
    """A Spark standalone master and `workers` workers bound to 127.0.0.1 on free ports."""

    def __init__(self, workdir: Path, workers: int = 2, cores: int = 1, memory: str = "2g") -> None:
        self.workdir = workdir
        self.env = spark_env(workdir)
        self.port, self.ui_port = free_port(), free_port()
        self.url = f"spark://{HOST}:{self.port}"
        self.ui_url = f"http://{HOST}:{self.ui_port}"
        self.master = Service(
            "spark master",
            [
                str(SPARK_CLASS),
                "org.apache.spark.deploy.master.Master",
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--webui-port",
                str(self.ui_port),
            ],
            self.env,
            workdir / "logs" / "master.log",
        )
        self.worker_ui_urls: list[str] = []
        self.workers: list[Service] = []
        for i in range(workers):
            ui_port = free_port()
            self.worker_ui_urls.append(f"http://{HOST}:{ui_port}")
            self.workers.append(
                Service(
                    f"spark worker {i + 1}",
                    [
                        str(SPARK_CLASS),
                        "org.apache.spark.deploy.worker.Worker",
                        "--host",
                        HOST,
                        "--port",
                        str(free_port()),
                        "--webui-port",
                        str(ui_port),
                        "--cores",
                        str(cores),
                        "--memory",
                        memory,
                        "--work-dir",
                        str(workdir / f"worker{i + 1}"),
                        self.url,
                    ],
                    self.env,
                    workdir / "logs" / f"worker{i + 1}.log",
                )
            )

    def status(self) -> dict[str, Any]:
        """The master's own summary: workers, running and completed applications."""
        return get_json(f"{self.ui_url}/json")

    def start(self, timeout: float = 120.0) -> None:
        """Launch the master, wait for it, launch the workers; `wait_ready` waits for them.
        (A worker started before its master is up retries only after several seconds.)"""
        self.master.start()
        wait_for(
            "the Spark master", lambda: self.status()["status"] == "ALIVE", [self.master], timeout
        )
        for worker in self.workers:
            worker.start()

    def wait_ready(self, timeout: float = 120.0) -> None:
        services = [self.master, *self.workers]
        wait_for(
            f"the Spark master and {len(self.workers)} registered workers",
            lambda: self.status()["aliveworkers"] == len(self.workers),
            services,
            timeout,
        )

    def stop(self) -> None:
        for service in [*self.workers, self.master]:
            service.stop()


class MlflowServer:
    """`mlflow server` with a SQLite store and proxied artifacts, all under `workdir`."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.uri = f"http://{HOST}:{self.port}"
        self.artifacts = workdir / "artifacts"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["TMPDIR"] = str(workdir / "tmp")
        # MLflow's job runners (GenAI jobs, which lakeml never uses) off, as in the suite's
        # server (tests/mlflow_server.py): five fewer Python processes.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        (workdir / "tmp").mkdir(parents=True, exist_ok=True)
        self.service = Service(
            "mlflow server",
            [
                str(BIN / "mlflow"),
                "server",
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{workdir / 'mlflow.db'}",
                "--serve-artifacts",
                "--artifacts-destination",
                self.artifacts.as_uri(),
            ],
            env,
            workdir / "logs" / "mlflow.log",
        )

    def healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
            return response.status == 200

    def start(self) -> None:
        self.service.start()

    def wait_ready(self, timeout: float = 120.0) -> None:
        wait_for("the MLflow server's /health", self.healthy, [self.service], timeout)

    def stop(self) -> None:
        self.service.stop()


class Command:
    """A command run to completion in its own process group, its output in two files
    (files, not pipes: two commands running at once must never block on a full pipe)."""

    def __init__(
        self, name: str, cmd: Sequence[str], env: dict[str, str], log_dir: Path, cwd: Path = ROOT
    ) -> None:
        self.name, self.cmd = name, list(cmd)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.out, self.err = log_dir / f"{name}.out", log_dir / f"{name}.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                self.cmd,
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait(self, timeout: float) -> subprocess.CompletedProcess[str]:
        """The finished command's status and output; on timeout end its whole group and fail."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.name} did not finish in {timeout:.0f}s\n"
                f"--- stdout\n{self.text(self.out)[-4000:]}\n"
                f"--- stderr\n{self.text(self.err)[-4000:]}"
            ) from None
        out, err = self.text(self.out), self.text(self.err)
        return subprocess.CompletedProcess(self.cmd, self.proc.returncode, out, err)

    def kill(self) -> None:
        """End the command and everything it started (spark-submit's Python driver, say)."""
        if _group_alive(self.proc.pid):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    @staticmethod
    def text(path: Path) -> str:
        return path.read_text(errors="replace")


def run(
    name: str, cmd: Sequence[str], env: dict[str, str], timeout: float, log_dir: Path
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion (see `Command`)."""
    return Command(name, cmd, env, log_dir).wait(timeout)


def spark_submit_command(
    master: str, job: str, job_args: Sequence[str], submit_args: Sequence[str] = ()
) -> list[str]:
    """`spark-submit --master <master> [submit_args] jobs/<job>.py <job_args>`, client mode."""
    script = str(ROOT / "jobs" / f"{job}.py")
    return [str(SPARK_SUBMIT), "--master", master, *submit_args, script, *job_args]
