"""Connect to the MLflow tracking store and model registry named by the config.

The embedded default is a SQLite store with an artifact folder under `storage.root`; any
other tracking URI (an `mlflow server` over HTTP, say) comes from config or
`MLFLOW_TRACKING_URI`. A server that does not answer is a clear error in bounded time.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from lakeml.core.config import Config
from lakeml.core.errors import LakemlError
from lakeml.core.logs import quiet_python_loggers


def check_reachable(uri: str, timeout_seconds: float) -> None:
    """Fail fast, in at most `timeout_seconds`, when an HTTP tracking server is not there."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_seconds):
            pass
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LakemlError(
            f"MLflow tracking server {uri} is unreachable ({reason}); start it "
            "(mlflow server ...) or point mlflow.tracking_uri / MLFLOW_TRACKING_URI elsewhere"
        ) from None


def connect(cfg: Config) -> MlflowClient:
    """Point MLflow at the configured store, make sure the experiment exists, return a client."""
    # No INFO lines about creating the SQLite store's tables, nor on every Spark model load.
    quiet_python_loggers()
    uri = cfg.tracking_uri
    # Bound every HTTP call MLflow makes, so a server that dies mid-run cannot hang a job.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(cfg.mlflow.timeout_seconds))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    check_reachable(uri, cfg.mlflow.timeout_seconds)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    exported = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # MLflow also exports these URIs to the environment, where Config reads a user's choice
    # of store: put them back, or the artifact root (./mlruns) and any later Config (another
    # storage.root in the same process) would follow this store.
    for key, value in exported.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name(cfg.mlflow.experiment)
    if experiment is None:
        client.create_experiment(cfg.mlflow.experiment, artifact_location=cfg.artifact_location)
    mlflow.set_experiment(cfg.mlflow.experiment)
    return client
