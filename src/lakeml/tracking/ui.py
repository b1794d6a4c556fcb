"""How lakeml's experiment presents itself in the MLflow UI: as a model-training experiment
with a description of what it holds, and a link that opens it on its runs table.

MLflow 3's UI has two faces, "GenAI" (overview, traces, judges) and "Model training" (the
runs table). An experiment's kind is its tag `mlflow.experimentKind` (the UI's kind picker
writes it; `custom_model_development` is "Machine learning"). MLflow 3.17's UI does not read
the tag to choose the landing view: its `workflowType` does (the URL's `?workflowType=`, else
the browser's last choice, GenAI at first), so `experiment_url` asks for model training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:  # importing this module does not import MLflow
    from mlflow.tracking import MlflowClient

EXPERIMENT_KIND = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
NOTE = "mlflow.note.content"  # the description shown in the experiment's header
DESCRIPTION = (
    "lakeml churn models: one parent run per `lakeml train` with a nested run per model "
    "type, the refit winner and the scikit-learn baseline; drift and retrain-decision runs"
)
EXPERIMENT_TAGS = {EXPERIMENT_KIND: MODEL_TRAINING, NOTE: DESCRIPTION}


def mark_experiment(client: MlflowClient, experiment_id: str) -> None:
    """Tag the experiment with EXPERIMENT_TAGS, writing only what differs (a rerun writes
    nothing). A description someone already wrote is kept: lakeml only fills an empty one."""
    current = client.get_experiment(experiment_id).tags
    for key, value in EXPERIMENT_TAGS.items():
        keep = key == NOTE and current.get(NOTE, "").strip()
        if current.get(key) != value and not keep:
            client.set_experiment_tag(experiment_id, key, value)


def experiment_url(server: str, experiment_id: str) -> str:
    """The link that opens the experiment on its runs table in the MLflow UI at `server`
    (an `mlflow server` or `mlflow ui` base URL), without any credentials in it."""
    parts = urlsplit(server)
    host = parts.netloc.rpartition("@")[2]
    base = urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
    return f"{base}/#/experiments/{experiment_id}?workflowType=machine_learning"
