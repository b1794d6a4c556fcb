"""Connect to the MLflow tracking store and model registry named by the config.

The embedded default is a SQLite store with an artifact folder under `storage.root`; any
other tracking URI (an `mlflow server` over HTTP, say) comes from config or
`MLFLOW_TRACKING_URI`. A server that does not answer is a clear error in bounded time.
"""

from __future__ import annotations

import http.client
import os
import sqlite3
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from lakeml.core.config import MlflowConfig
from lakeml.core.errors import LakemlError
from lakeml.core.logs import quiet_python_loggers
from lakeml.core.secrets import redact_text, redact_uri
from lakeml.tracking.ui import mark_experiment

if TYPE_CHECKING:  # check_reachable runs before MLflow is imported (fast errors)
    from mlflow.tracking import MlflowClient


def check_reachable(uri: str, timeout_seconds: float) -> None:
    """Fail fast, in at most `timeout_seconds`, when an HTTP tracking server is not there."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_seconds):
            pass
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        # Shown without credentials. InvalidURL (a port that is not a number, as in
        # http://alice:pw@host) quotes parts of the URI: it is not quoted.
        invalid = isinstance(exc, http.client.InvalidURL)
        reason = "not a valid URL" if invalid else getattr(exc, "reason", exc)
        raise LakemlError(
            f"MLflow tracking server {redact_uri(uri)} is unreachable "
            f"({redact_text(str(reason))}); start it (mlflow server ...) or point "
            "mlflow.tracking_uri / MLFLOW_TRACKING_URI elsewhere"
        ) from None


# A new SQLite store costs MLflow 1.6-3.1 s here: it creates its first tables and then runs every
# schema migration since, one by one. The result is the same empty database each time for
# one MLflow version, so lakeml keeps one, made by MLflow itself, and copies it for each new
# store. Its experiments are removed first: MLflow adds the Default experiment when it opens
# a store without one, with that store's own artifact folder.
def store_template(cache_dir: Path) -> Path:
    """An empty SQLite store with MLflow's current schema, built once per MLflow version."""
    import mlflow
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    template = cache_dir / "mlflow" / f"empty-store-{mlflow.__version__}.db"
    if template.is_file():
        return template
    template.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=template.parent) as tmp:
        db = Path(tmp) / "store.db"
        SqlAlchemyStore(f"sqlite:///{db}", tmp).engine.dispose()
        con = sqlite3.connect(db)
        try:
            with con:
                con.execute("DELETE FROM experiments")
            con.execute("VACUUM")
        finally:
            con.close()
        os.replace(db, template)
    return template


def sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (query options dropped); None for any other
    URI and for an in-memory database."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def seed_sqlite_store(db: Path, cache_dir: Path) -> bool:
    """Give a SQLite store that does not exist yet MLflow's tables, from `store_template`.

    Best effort: on any failure, or when another process created the file meanwhile, the
    store is left as it was for MLflow to set up itself. True if this call created it."""
    if db.exists():
        return False
    partial = db.with_name(f".{db.name}.{os.getpid()}.tmp")
    try:
        partial.write_bytes(store_template(cache_dir).read_bytes())
        os.link(partial, db)  # fails if the store appeared meanwhile: never overwritten
        return True
    except Exception:  # noqa: BLE001 (an optimisation only: MLflow's own set-up still works)
        return False
    finally:
        partial.unlink(missing_ok=True)


def connect(settings: MlflowConfig, uri: str, artifact_location: str | None = None) -> MlflowClient:
    """Point MLflow at the store `uri` (resolved by the config: `Config.tracking_uri`), make
    sure the experiment in `settings` exists (new ones keep artifacts at `artifact_location`,
    None: the server's), return a client."""
    import mlflow
    from mlflow.tracking import MlflowClient

    # No INFO lines about creating the SQLite store's tables, nor on every Spark model load.
    quiet_python_loggers()
    # Bound every HTTP call MLflow makes, so a server that dies mid-run cannot hang a job.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(settings.timeout_seconds))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    check_reachable(uri, settings.timeout_seconds)
    db = sqlite_file(uri)
    if db is not None:
        from lakeml.core.session import lakeml_cache_dir

        db.parent.mkdir(parents=True, exist_ok=True)
        seed_sqlite_store(db, lakeml_cache_dir())
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
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is None:
        experiment_id = client.create_experiment(
            settings.experiment, artifact_location=artifact_location
        )
    else:
        experiment_id = experiment.experiment_id
    # A model-training experiment with a description, for the MLflow UI (`tracking.ui`).
    mark_experiment(client, experiment_id)
    mlflow.set_experiment(settings.experiment)
    return client
