"""`lakeml serve` as a real process on 127.0.0.1, called by a real HTTP client (urllib).

The lake (tests/conftest.py `xgboost_lake`) holds an xgboost champion and its batch scores;
the service must answer with exactly those scores, predict the same probabilities live,
refuse bad requests with JSON errors and keep serving, follow the champion alias and new
versions of the scores table, and stop cleanly.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import mlflow
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable, write_deltalake

TOKEN_ENV = "LAKEML_TEST_SERVE_TOKEN"
TOKEN = "s3cret-token-for-tests"
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, port: int, token: str | None = TOKEN) -> None:
        self.base, self.token = f"http://127.0.0.1:{port}", token

    def call(
        self, path: str, body: Any = None, token: str | None = "default", raw: bytes | None = None
    ) -> tuple[int, dict, Any]:
        token = self.token if token == "default" else token
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.base + path, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                status, head, text = r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            status, head, text = e.code, dict(e.headers), e.read().decode()
        ctype = head.get("content-type", "")
        return status, head, json.loads(text) if "json" in ctype else text


@pytest.fixture(scope="module")
def served(xgboost_lake, tmp_path_factory):
    """The service over a copy of the lake's scores table (so tests may append to it)."""
    cfg = xgboost_lake["cfg"]
    scores = tmp_path_factory.mktemp("served") / "churn_scores"
    shutil.copytree(cfg.table("scores"), scores)
    port = free_port()
    env = {**os.environ, TOKEN_ENV: TOKEN, "PYTHONUNBUFFERED": "1"}
    sets = [*xgboost_lake["overrides"], f"tables.scores={scores}", f"serve.auth_env={TOKEN_ENV}"]
    sets += ["serve.refresh_seconds=0.5"]
    command = [sys.executable, "-m", "lakeml.cli", "serve", "--conf", str(REPO / "conf/local.yaml")]
    command += [x for s in sets for x in ("--set", s)] + ["--port", str(port)]
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    client = Client(port)
    deadline = time.monotonic() + 60
    while True:
        try:
            if client.call("/healthz")[0] == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"lakeml serve did not start: {proc.communicate()[1][-2000:]}")
        time.sleep(0.2)
    yield {"client": client, "proc": proc, "scores": str(scores), "cfg": cfg}
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def features_of_scored_snapshot(cfg) -> tuple[Any, Any]:
    scores = DeltaTable(cfg.table("scores")).to_pandas()
    features = DeltaTable(cfg.table("features")).to_pandas()
    day = scores["snapshot_date"].max()
    return scores, features[features["snapshot_date"] == day]


def test_lookup_returns_the_batch_score_of_each_entity(served):
    client, cfg = served["client"], served["cfg"]
    scores, _ = features_of_scored_snapshot(cfg)
    for row in scores.head(5).itertuples():
        status, head, body = client.call(f"/v1/scores/{row.user_id}")
        assert status == 200, body
        assert body["churn_probability"] == pytest.approx(row.churn_probability, abs=0)
        assert (body["predicted_churn"], body["risk_decile"]) == (
            row.predicted_churn,
            row.risk_decile,
        )
        assert body["model_version"] == row.model_version == 1
        assert body["snapshot_date"] == row.snapshot_date.isoformat()
        assert [r["feature"] for r in body["reasons"]] == [r["feature"] for r in row.reasons]
        assert head["x-model-version"] == f"{cfg.mlflow.registered_model}/1"


def test_predict_equals_the_batch_scores_of_the_same_rows_and_version(served):
    client, cfg = served["client"], served["cfg"]
    scores, features = features_of_scored_snapshot(cfg)
    rows = json.loads(features.drop(columns=["snapshot_date"]).to_json(orient="records"))
    status, _, body = client.call("/v1/predict", {"rows": rows})
    assert status == 200, body
    assert body["model_version"] == 1
    batch = dict(zip(scores["user_id"], scores["churn_probability"], strict=True))
    got = [p["churn_probability"] for p in body["predictions"]]
    assert len(got) == len(rows) == len(batch)
    assert max(abs(g - batch[r["user_id"]]) for g, r in zip(got, rows, strict=True)) <= 1e-6
    # Labels at the version's threshold, and reasons that raise the risk, largest first.
    threshold = body["threshold"]
    assert all(
        p["predicted_churn"] == int(p["churn_probability"] >= threshold)
        for p in body["predictions"]
    )
    # The reasons equal the batch ones, computed by Spark from xgboost's pred_contrib_col.
    batch_reasons = dict(zip(scores["user_id"], scores["reasons"], strict=True))
    for p, r in zip(body["predictions"], rows, strict=True):
        expected = list(batch_reasons[r["user_id"]])
        assert [x["feature"] for x in p["reasons"]] == [x["feature"] for x in expected]
        assert [x["value"] for x in p["reasons"]] == [x["value"] for x in expected]
        for got_r, want in zip(p["reasons"], expected, strict=True):
            assert got_r["contribution"] == pytest.approx(want["contribution"], abs=1e-4)


def test_concurrent_predictions_equal_one_at_a_time_ones(served):
    """Requests in flight together are predicted in batches (`lakeml.serving.batching`);
    each must still get exactly its own answer, as when sent alone."""
    client, cfg = served["client"], served["cfg"]
    _, features = features_of_scored_snapshot(cfg)
    rows = json.loads(features.drop(columns=["snapshot_date"]).to_json(orient="records"))[:48]
    bodies = [{"rows": [r]} for r in rows] + [{"rows": rows[i : i + 3]} for i in range(0, 48, 3)]
    alone = [client.call("/v1/predict", b) for b in bodies]
    port = int(client.base.rsplit(":", 1)[1])
    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(16)]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {client.token}"}
    together, many = [], bodies * 3
    try:
        for start in range(0, len(many), len(connections)):
            # Every request of a round is sent before any answer is read: they are in flight
            # together, as many as the server takes up at once.
            sent = list(zip(connections, many[start : start + len(connections)], strict=False))
            for conn, body in sent:
                conn.request("POST", "/v1/predict", json.dumps(body), headers)
            for conn, _ in sent:
                r = conn.getresponse()
                together.append((r.status, r.getheader("x-model-version"), json.loads(r.read())))
    finally:
        for conn in connections:
            conn.close()
    name = cfg.mlflow.registered_model
    for (status, version, body), (_, _, want) in zip(together, alone * 3, strict=True):
        assert status == 200, body
        assert body == want  # probabilities, labels and reasons, bit for bit
        assert body["model_version"] == 1 and version == f"{name}/1"
    metrics = client.call("/metrics", token=None)[2]
    lines = metrics.splitlines()
    counts = dict(x.split() for x in lines if x.startswith("lakeml_predict_batch"))
    batched = int(counts["lakeml_predict_batched_requests_total"])
    assert batched >= 4 * len(bodies)  # and the earlier tests' predictions
    assert 1 <= int(counts["lakeml_predict_batches_total"]) <= batched


def test_bad_requests_get_json_errors_and_the_service_keeps_serving(served):
    client, cfg = served["client"], served["cfg"]
    _, features = features_of_scored_snapshot(cfg)
    good = json.loads(features.drop(columns=["snapshot_date"]).head(1).to_json(orient="records"))[0]
    wrong = {**good, "songs_7d": "many"}
    missing = {k: v for k, v in good.items() if k != "gender"}
    cases = {
        "unknown entity": (("/v1/scores/nobody",), 404),
        "malformed JSON": (("/v1/predict",), 422, b'{"rows": [ '),
        "wrong type": (("/v1/predict", {"rows": [wrong]}), 422),
        "missing field": (("/v1/predict", {"rows": [missing]}), 422),
        "no rows": (("/v1/predict", {"rows": []}), 422),
    }
    for name, (args, status, *raw) in cases.items():
        got, _, body = client.call(*args, raw=raw[0] if raw else None)
        assert got == status, (name, body)
        assert isinstance(body, dict) and body["error"], name
        assert "Traceback" not in json.dumps(body), name
    # A body declared over the limit is refused from its Content-Length alone: only part of
    # it is sent, so the server's early answer cannot race the upload (a broken pipe).
    conn = http.client.HTTPConnection("127.0.0.1", int(client.base.rsplit(":", 1)[1]), timeout=30)
    conn.putrequest("POST", "/v1/predict")
    for key, value in {"Content-Type": "application/json", "Content-Length": "1100000",
                       "Authorization": f"Bearer {client.token}"}.items():  # fmt: skip
        conn.putheader(key, value)
    conn.endheaders(b" " * 1024)
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert response.status == 413 and body["error"] and "Traceback" not in json.dumps(body)
    _, _, body = client.call("/v1/predict", {"rows": [wrong]})
    assert body["detail"] == [{"loc": ["rows", 0, "songs_7d"], "msg": "expected long, got 'many'"}]
    _, _, body = client.call("/v1/predict", {"rows": [missing]})
    assert body["detail"] == [{"loc": ["rows", 0, "gender"], "msg": "field required"}]
    for token in (None, "wrong"):
        status, _, body = client.call("/v1/model", token=token)
        assert status == 401 and body == {"error": "missing or wrong bearer token"}
    assert client.call("/healthz", token=None)[0] == 200  # health needs no token
    status, _, body = client.call("/v1/predict", {"rows": [good]})
    assert status == 200 and len(body["predictions"]) == 1
    metrics = client.call("/metrics", token=None)[2]
    assert 'lakeml_requests_total{route="/v1/predict",method="POST",status="422"}' in metrics
    assert "lakeml_model_version 1" in metrics


def test_model_and_readiness_describe_the_champion(served):
    client, cfg = served["client"], served["cfg"]
    status, _, body = client.call("/v1/model")
    assert status == 200
    version = mlflow.MlflowClient(
        tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri
    ).get_model_version(cfg.mlflow.registered_model, "1")
    assert body["version"] == 1 and body["model_type"] == "xgboost"
    assert body["threshold"] == float(version.tags["threshold"])
    assert body["test_metrics"]["roc_auc"] == float(version.tags["test_roc_auc"])
    assert body["training_window"]["train_snapshots"] == version.tags["train_snapshots"]
    assert body["gate"]["decision"] == "promoted" and body["live_predictions"] is True
    assert client.call("/readyz")[0:1] == (200,)
    docs = client.call("/openapi.json", token=None)[2]
    assert "/v1/predict" in docs["paths"]


def wait_for(check, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not picked up in time"
        time.sleep(0.2)


def test_a_new_scores_version_and_an_alias_move_are_picked_up_without_failed_requests(served):
    client, cfg = served["client"], served["cfg"]
    # Another scoring of one entity, later, lands as a new table version (written by delta-rs).
    one = DeltaTable(served["scores"]).to_pyarrow_table().slice(0, 1)
    entity = one["user_id"][0].as_py()
    later = pc.add(one["scored_at"], pa.scalar(1_000_000, pa.duration("us")))
    one = one.set_column(one.schema.get_field_index("scored_at"), "scored_at", later)
    p = pa.array([0.123456], one.schema.field("churn_probability").type)
    one = one.set_column(one.schema.get_field_index("churn_probability"), "churn_probability", p)
    write_deltalake(served["scores"], one, mode="append")
    wait_for(lambda: client.call(f"/v1/scores/{entity}")[2]["churn_probability"] == 0.123456)

    registry = mlflow.MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri)
    name = cfg.mlflow.registered_model
    v1 = registry.get_model_version(name, "1")
    v2 = registry.create_model_version(name, v1.source, v1.run_id, tags=v1.tags)
    statuses = []
    try:
        registry.set_registered_model_alias(name, "champion", v2.version)
        versions = set()

        def moved() -> bool:
            status, head, body = client.call("/v1/model")
            statuses.append(status)
            versions.add(head.get("x-model-version"))
            return status == 200 and body["version"] == int(v2.version)

        wait_for(moved)
        status, head, body = client.call(
            "/v1/predict",
            {
                "rows": [
                    json.loads(
                        DeltaTable(cfg.table("features"))
                        .to_pandas()
                        .drop(columns=["snapshot_date"])
                        .head(1)
                        .to_json(orient="records")
                    )[0]
                ]
            },
        )
        assert status == 200 and body["model_version"] == int(v2.version)
        assert head["x-model-version"] == f"{name}/{v2.version}"
    finally:
        registry.set_registered_model_alias(name, "champion", "1")
    assert set(statuses) == {200}  # no failed request while the new version loaded


def test_the_service_stops_cleanly(served):
    proc = served["proc"]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["ok"] is True and summary["command"] == "serve"
