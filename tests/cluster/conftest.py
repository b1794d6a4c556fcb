"""Fixtures that start real services: a Spark standalone cluster and an MLflow server.

Both are started once per session, on free loopback ports, with every file they write in
one temporary folder, and are stopped (process groups killed, folder removed) at the end,
also when a test fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_harness import ROOT, MlflowServer, StandaloneCluster


@pytest.fixture(scope="session")
def cluster_workdir() -> Iterator[Path]:
    """Everything the services and runs write; LAKEML_KEEP_CLUSTER_WORKDIR=1 keeps it."""
    path = Path(tempfile.mkdtemp(prefix="lakeml-cluster-test-"))
    try:
        yield path
    finally:
        if os.environ.get("LAKEML_KEEP_CLUSTER_WORKDIR") == "1":
            print(f"\nkept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def py_files() -> Path:
    """dist/lakeml.zip for --py-files, rebuilt by make when a source file changed."""
    proc = subprocess.run(
        ["make", "--no-print-directory", "dist/lakeml.zip"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return ROOT / "dist" / "lakeml.zip"


@pytest.fixture(scope="session")
def services(cluster_workdir: Path) -> Iterator[tuple[StandaloneCluster, MlflowServer]]:
    """A master with two 1-core workers and an MLflow server, started side by side."""
    cluster = StandaloneCluster(cluster_workdir / "spark", workers=2, cores=1, memory="2g")
    server = MlflowServer(cluster_workdir / "mlflow-server")
    try:
        server.start()
        cluster.start()
        cluster.wait_ready()
        server.wait_ready()
        yield cluster, server
    finally:
        cluster.stop()
        server.stop()


@pytest.fixture(scope="session")
def standalone_cluster(services: tuple[StandaloneCluster, MlflowServer]) -> StandaloneCluster:
    return services[0]


@pytest.fixture(scope="session")
def mlflow_server(services: tuple[StandaloneCluster, MlflowServer]) -> MlflowServer:
    return services[1]
