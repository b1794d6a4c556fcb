"""A real `mlflow server` for tests that need the MLflow UI or REST API over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

MLFLOW = Path(sys.executable).parent / "mlflow"
HOST = "127.0.0.1"
# MLflow's job runners (huey consumer processes for its GenAI jobs), which lakeml never
# uses, off: a server took 5-6 CPU seconds to start and idle 15 s without them, 27 with
# them (2026-12-06, two runs each).
JOBS_OFF = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def mlflow_server(backend_uri: str, artifact_root: str, log_dir: Path) -> Iterator[str]:
    """`mlflow server` (one worker) on `backend_uri` at 127.0.0.1; its base URL. Stopped when
    the block ends."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(JOBS_OFF)
    log_path = log_dir / "mlflow-server.log"
    log = log_path.open("wb")
    server = subprocess.Popen(
        [str(MLFLOW), "server", "--backend-store-uri", backend_uri,
         "--default-artifact-root", artifact_root, "--host", HOST, "--port", str(port),
         "--workers", "1"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,  # its uvicorn workers go with it
    )  # fmt: skip
    uri = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 90
        while not answers(f"{uri}/health"):
            if server.poll() is not None or time.monotonic() > deadline:
                text = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"mlflow server did not come up at {uri}:\n{text}")
            time.sleep(0.25)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
