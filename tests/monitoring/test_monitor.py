"""`lakeml monitor` and `lakeml retrain` on the scoring lake: exit statuses, the JSON report,
the webhook body as a real HTTP receiver on 127.0.0.1 gets it, the retraining decision."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import mlflow
import pytest
from pyspark.sql import SparkSession
from scoring_lake import CONF, LATEST_DAY, USERS, Lake, feature_rows

from lakeml.cli import main
from lakeml.core import storage
from lakeml.core.config import load_config

TOKEN = "T0k3n-b1e7c0de"


class Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, dict]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def webhook(monkeypatch: pytest.MonkeyPatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Receiver.received = []
    monkeypatch.setenv("LAKEML_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hook/{TOKEN}")
    yield Receiver.received
    server.shutdown()


def run(command: str, sets: list[str], capsys) -> tuple[int, dict, str]:
    status = main([command, "--conf", str(CONF), *[a for s in sets for a in ("--set", s)]])
    out = capsys.readouterr()
    return status, json.loads(out.out.strip().splitlines()[-1]), out.out + out.err


def test_monitor_exit_statuses_report_and_webhook(
    spark: SparkSession, lake: Lake, tmp_path: Path, webhook, capsys
) -> None:
    sets = [
        f"storage.root={lake.root}",
        *[f"tables.{t}={tmp_path}/{t}" for t in ("scores", "drift", "performance", "labels")],
    ]
    assert run("score", sets, capsys)[0] == 0
    # The latest snapshot's songs moved up by 100: 1 of its 3 features drifts (33% > 10%).
    status, summary, text = run("monitor", sets, capsys)
    assert status == 1
    report = summary["monitor"]
    assert summary["ok"] is True and summary["exit_status"] == 1
    assert report["failed"] == ["drift"]
    assert [c["name"] for c in report["checks"]] == [
        "champion",
        "scores_fresh",
        "realized_performance",
        "drift",
        "quarantine",
    ]
    assert report["alert"] == {"sent": True, "error": None, "env": "LAKEML_WEBHOOK_URL"}
    assert len(webhook) == 1
    path, body = webhook[0]
    assert path == f"/hook/{TOKEN}"
    assert body["text"].startswith(
        "lakeml monitor: 1 of 5 checks failed for lakeml-churn\n- drift:"
    )
    assert "1 of 3 features drifted on 2018-11-08" in body["text"]
    assert TOKEN not in text

    # The latest snapshot's labels mature: realized performance is measured, and with a drift
    # allowance of 50% every check holds: exit 0, no alert.
    churned = [
        (u, day, int(songs - 100 < 6)) for u, day, songs, _, _ in feature_rows(LATEST_DAY, 100)
    ]
    labels = spark.createDataFrame(churned, "user_id string, snapshot_date date, churned int")
    labels.write.format("delta").save(f"{tmp_path}/labels")
    status, summary, text = run("monitor", [*sets, "monitor.max_drift_share=0.5"], capsys)
    assert status == 0 and summary["monitor"]["failed"] == []
    [row] = summary["realized"]["rows"]
    assert (row["snapshot_date"], row["rows"], row["positives"]) == ("2018-11-08", USERS, 6)
    assert row["roc_auc"] == 1.0  # the model ranks by songs, and the label is songs < 106
    assert len(webhook) == 1
    assert storage.read(spark, f"{tmp_path}/performance").count() == 1

    # Every MLflow record of the lake is free of the webhook's token.
    db = Path(load_config(CONF, sets).tracking_uri.removeprefix("sqlite:///"))
    assert TOKEN.encode() not in db.read_bytes()

    # Errors exit 2: a config mistake, and a tracking server that does not answer.
    assert run("monitor", [*sets, "monitor.max_drift_share=2"], capsys)[0] == 2
    status, summary, _ = run("monitor", [*sets, "mlflow.tracking_uri=http://127.0.0.1:9"], capsys)
    assert status == 2 and summary["ok"] is False


def test_retrain_keeps_a_healthy_champion_and_logs_why(
    spark: SparkSession, lake: Lake, tmp_path: Path, capsys
) -> None:
    sets = [
        f"storage.root={lake.root}",
        *[f"tables.{t}={tmp_path}/{t}" for t in ("scores", "drift", "performance", "labels")],
    ]
    assert run("score", sets, capsys)[0] == 0
    status, summary, text = run("retrain", [*sets, "monitor.max_drift_share=0.5"], capsys)
    assert status == 0
    decision = summary["retrain"]
    assert decision["decision"] == "keep" and "train" not in decision
    assert decision["reasons"][0].startswith("champion v1 is 0.0 days old (<= 28)")
    assert "[lakeml] retrain.decide: no retraining: champion v1" in text
    run_info = mlflow.get_run(decision["decision_run_id"])
    assert run_info.data.tags["lakeml.kind"] == "retrain_decision"
    assert run_info.data.tags["decision"] == "keep"

    # Drift over the default 10% share: the policy retrains (here the lake has no labelled
    # history, so training itself stops at its preflight, after the decision was logged).
    status, summary, text = run("retrain", sets, capsys)
    assert summary["retrain"]["decision"] == "retrain"
    assert "drift below the floors: 1 of 3 features drifted" in "; ".join(
        summary["retrain"]["reasons"]
    )
    assert status == 2 and summary["failed_stage"] is None
