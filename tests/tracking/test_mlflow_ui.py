"""lakeml's experiment as a data scientist sees it: a real `mlflow server`, the real MLflow UI
in headless Chromium. The link lakeml hands out opens the runs table, where the UI's own
default (a bare experiment link) opens the GenAI overview."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from browser import is_blank, open_page
from mlflow_server import mlflow_server as run_server

from lakeml.tracking.ui import DESCRIPTION, EXPERIMENT_TAGS, experiment_url, mark_experiment

# The runs table has drawn the run's row: its name, linking to the run's page.
RUNS_TABLE_SHOWS = "!!document.querySelector('[role=grid] a[href*=\"/runs/\"]')"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on SQLite under a temporary folder; its base URL. Stopped at the end."""
    root = tmp_path_factory.mktemp("mlflow-ui")
    with run_server(f"sqlite:///{root / 'mlflow.db'}", str(root / "artifacts"), root) as uri:
        yield uri


@pytest.fixture(scope="module")
def churn_experiment(mlflow_server: str) -> tuple[str, str]:
    """A marked experiment with a `train` parent run and its nested `xgboost` run:
    (experiment id, the parent run's id)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)
    experiment_id = client.create_experiment("lakeml-churn")
    mark_experiment(client, experiment_id)
    parent = client.create_run(experiment_id, run_name="train").info.run_id
    child = client.create_run(
        experiment_id, run_name="xgboost", tags={"mlflow.parentRunId": parent}
    ).info.run_id
    for run_id, auc in ((parent, 0.81), (child, 0.81)):
        client.log_metric(run_id, "test_roc_auc", auc)
        client.set_terminated(run_id)
    return experiment_id, parent


def test_marking_is_idempotent_and_keeps_a_written_description(mlflow_server: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)
    experiment_id = client.create_experiment("marked-twice")
    mark_experiment(client, experiment_id)
    mark_experiment(client, experiment_id)
    tags = client.get_experiment(experiment_id).tags
    assert {k: tags[k] for k in EXPERIMENT_TAGS} == {
        "mlflow.experimentKind": "custom_model_development",
        "mlflow.note.content": DESCRIPTION,
    }

    client.set_experiment_tag(experiment_id, "mlflow.note.content", "my notes")
    mark_experiment(client, experiment_id)
    assert client.get_experiment(experiment_id).tags["mlflow.note.content"] == "my notes"


def test_the_link_names_the_model_training_view_and_carries_no_credentials():
    link = experiment_url("https://alice:s3cret@mlflow.example.com/mlflow/", "7")
    assert link == "https://mlflow.example.com/mlflow/#/experiments/7?workflowType=machine_learning"


def test_the_link_lakeml_gives_opens_the_runs_table(mlflow_server, churn_experiment, tmp_path):
    experiment_id, parent = churn_experiment

    page = open_page(
        experiment_url(mlflow_server, experiment_id),
        tmp_path / "runs.png",
        wait_for=f"location.href.includes('/runs') && {RUNS_TABLE_SHOWS}",
        wait_ms=300,
    )

    assert f"/#/experiments/{experiment_id}/runs?" in page.url
    assert "workflowType=machine_learning" in page.url
    row = rf'<a [^>]*href="#/experiments/{experiment_id}/runs/{parent}"[^>]*><span[^>]*>train<'
    assert re.search(row, page.dom), "the runs table does not show the run `train`"
    assert DESCRIPTION.split(":")[0] in page.dom  # the description, in the header
    assert not is_blank(page.screenshot)
    # The UI is served whole by the tracking server: nothing from the internet.
    assert page.requests and all(u.startswith(mlflow_server) for u in page.requests)


def test_a_bare_experiment_link_opens_the_genai_overview_instead(
    mlflow_server, churn_experiment, tmp_path
):
    """The control: MLflow 3.17's UI ignores the kind tag when it picks the landing view.
    If this starts failing, MLflow reads the tag now and the link needs no workflowType."""
    experiment_id, _ = churn_experiment

    page = open_page(
        f"{mlflow_server}/#/experiments/{experiment_id}",
        tmp_path / "bare.png",
        wait_for="location.href.includes('/overview') || location.href.includes('/runs')",
        wait_ms=500,
    )

    assert f"/#/experiments/{experiment_id}/overview" in page.url
    assert "workflowType=genai" in page.url
