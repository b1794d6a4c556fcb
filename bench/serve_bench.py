"""The prediction service under load, next to `mlflow models serve` on the same model.

    .venv/bin/python bench/serve_bench.py [--requests 5000] [--concurrency 32]

Builds a small lake under a temporary root (synthetic gold tables, an xgboost champion
trained and registered by `lakeml train`, its batch scores by `lakeml score`), starts
`lakeml serve`, and sends a fixed number of requests at a fixed number of concurrent
keep-alive connections (aiohttp), so the run stops by itself:
- lookup: GET /v1/scores/<id> over the scored ids;
- predict: POST /v1/predict with one feature row;
then the same single-row predictions to `mlflow models serve` (one worker, local env) on
the registered Spark-flavor model and on the version's native xgboost model. Prints
throughput, p50/p99 latency and errors for each, side by side, and how many batches the
service predicted the requests in. Server and load generator share this machine's cores.
Also measures the service's memory per million scored entities (resident set size of a
process holding a 1,000,000-row index).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "training"))

from benchlib import run_lakeml  # noqa: E402
from synthetic_gold import write_gold  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, seconds: float = 180) -> None:
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited: {proc.stderr.read()[-2000:] if proc.stderr else ''}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                return
        time.sleep(0.5)
    proc.kill()
    sys.exit(f"server at {url} did not come up")


async def load(url: str, bodies: list, requests: int, concurrency: int) -> dict:
    """`requests` calls over `concurrency` connections; latency of each, errors counted."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                target, body = bodies[i % len(bodies)]
                started = time.perf_counter()
                try:
                    if body is None:
                        async with session.get(url + target) as r:
                            await r.read()
                            ok = r.status == 200
                    else:
                        async with session.post(url + target, json=body) as r:
                            await r.read()
                            ok = r.status == 200
                except aiohttp.ClientError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        seconds = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "requests": requests,
        "per_second": requests / seconds,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "errors": errors,
    }


def predict_batches(base: str) -> tuple[int, int]:
    """The service's prediction batches so far, and the requests they answered (/metrics)."""
    import urllib.request

    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        lines = r.read().decode().splitlines()
    counts = dict(x.split() for x in lines if x.startswith("lakeml_predict_batch"))
    return (
        int(counts["lakeml_predict_batches_total"]),
        int(counts["lakeml_predict_batched_requests_total"]),
    )


def show(name: str, results: dict[str, dict]) -> None:
    r = results[name]
    print(
        f"{name:40} {r['requests']:8d} {r['per_second']:8.1f} {r['p50_ms']:8.1f} "
        f"{r['p99_ms']:8.1f} {r['errors']:6d}",
        flush=True,
    )


def build_lake(root: str) -> tuple[list[str], dict]:
    from lakeml.core.config import load_config
    from lakeml.core.session import get_spark

    models = "train.models=[{type: xgboost, grid: {max_depth: [4], n_estimators: [100]}}]"
    sets = [f"storage.root={root}", models]
    cfg = load_config(REPO / "conf/local.yaml", sets)
    spark = get_spark(cfg.spark)
    write_gold(spark, cfg.table("features"), cfg.table("labels"), 500, 6)
    flags = [x for s in sets for x in ("--set", s)]
    run_lakeml(["train", "--conf", "conf/local.yaml", *flags])
    run_lakeml(["score", "--conf", "conf/local.yaml", *flags])
    spark.stop()
    return sets, {"cfg": cfg}


def memory_per_million(tmp: str) -> float:
    """MB of resident memory a process gains holding a 1,000,000-entity index."""
    code = f"""
import gc, json, sys
import pyarrow as pa, numpy as np
from deltalake import write_deltalake
from datetime import date, datetime, timezone
n = 1_000_000
fields = [("feature", pa.string()), ("value", pa.string()), ("contribution", pa.float64())]
reason = pa.struct(fields)
one = [{{"feature": "songs_7d", "value": "12", "contribution": 0.5}}] * 3
t = pa.table({{
    "user_id": pa.array([f"user-{{i:07d}}" for i in range(n)]),
    "snapshot_date": pa.array([date(2018, 11, 26)] * n, pa.date32()),
    "churn_probability": pa.array(np.random.default_rng(0).random(n)),
    "predicted_churn": pa.array(np.zeros(n, dtype=np.int32)),
    "risk_decile": pa.array(np.ones(n, dtype=np.int32)),
    "reasons": pa.array([one] * n, pa.list_(reason)),
    "model_name": pa.array(["m"] * n),
    "model_version": pa.array(np.ones(n, dtype=np.int32)),
    "run_id": pa.array(["r"] * n),
    "scored_at": pa.array(
        [datetime(2026, 1, 1, tzinfo=timezone.utc)] * n, pa.timestamp("us", "UTC")
    ),
}})
write_deltalake({tmp!r} + "/million", t)
del t; gc.collect()
def rss():
    return int([l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1]) / 1024
from lakeml.serving import lookup
before = rss()
index = lookup.load({tmp!r} + "/million", "user_id", "m")
gc.collect()
assert len(index) == n and index.get("user-0000042")["risk_decile"] == 1
print(json.dumps(rss() - before))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--spark-requests", type=int, default=64)
    parser.add_argument("--lakeml-only", action="store_true", help="skip mlflow and memory")
    args = parser.parse_args()
    import mlflow
    from deltalake import DeltaTable

    with tempfile.TemporaryDirectory() as tmp:
        sets, lake = build_lake(tmp)
        cfg = lake["cfg"]
        scores = DeltaTable(cfg.table("scores")).to_pandas()
        features = DeltaTable(cfg.table("features")).to_pandas()
        day = scores["snapshot_date"].max()
        rows = json.loads(
            features[features["snapshot_date"] == day]
            .drop(columns=["snapshot_date"])
            .to_json(orient="records")
        )
        ids = list(scores["user_id"])
        # `mlflow models serve` runs the `uvicorn` executable: the venv's bin on PATH.
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        env = {**os.environ, "MLFLOW_TRACKING_URI": cfg.tracking_uri, "PATH": path}
        port = free_port()
        command = [sys.executable, "-m", "lakeml.cli", "serve", "--port", str(port)]
        command += [x for s in sets for x in ("--set", s)]
        servers = []
        results: dict[str, dict] = {}
        try:
            proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)  # fmt: skip
            servers.append(proc)
            base = f"http://127.0.0.1:{port}"
            wait_up(base + "/readyz", proc)
            lookups = [(f"/v1/scores/{i}", None) for i in ids]
            predicts = [("/v1/predict", {"rows": [r]}) for r in rows]
            run = asyncio.run
            results["lakeml lookup"] = run(load(base, lookups, args.requests, args.concurrency))
            show("lakeml lookup", results)
            results["lakeml predict"] = run(load(base, predicts, args.requests, args.concurrency))
            show("lakeml predict", results)
            batches = predict_batches(base)
            print(f"lakeml predict: {batches[1]} requests in {batches[0]} batches", flush=True)
            if args.lakeml_only:
                return
            client = mlflow.MlflowClient(tracking_uri=cfg.tracking_uri)
            version = client.get_model_version(cfg.mlflow.registered_model, "1")
            native_uri = version.tags["native_model_uri"]
            enc = mlflow.artifacts.load_dict(version.tags["native_encoding_uri"])
            import pandas as pd

            from lakeml.scoring import native

            matrix = native.encode(pd.DataFrame(rows), enc)
            for label, uri, make in (
                ("mlflow serve (spark flavor) predict", f"models:/{cfg.mlflow.registered_model}/1",
                 lambda r, m: {"dataframe_records": [r]}),
                ("mlflow serve (native xgboost) predict", native_uri,
                 lambda r, m: {"inputs": [m.tolist()]}),
            ):  # fmt: skip
                mport = free_port()
                mproc = subprocess.Popen(
                    [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "-p",
                     str(mport), "-h", "127.0.0.1", "--env-manager", "local", "-w", "1"],
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                )  # fmt: skip
                servers.append(mproc)
                mbase = f"http://127.0.0.1:{mport}"
                wait_up(mbase + "/ping", mproc)
                bodies = [("/invocations", make(r, m)) for r, m in zip(rows, matrix, strict=True)]
                # A Spark-flavor request runs a Spark job (most of a second): fewer of them.
                n = args.requests if "native" in label else args.spark_requests
                results[label] = run(load(mbase, bodies, n, args.concurrency))
                show(label, results)
                mproc.terminate()
                mproc.wait(timeout=30)
        finally:
            for p in servers:
                if p.poll() is None:
                    p.terminate()
                    p.wait(timeout=30)
        mb = memory_per_million(tmp)
    print(f"{args.concurrency} concurrent connections, server and load generator on this machine")
    print(f"{'':40} {'requests':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for name in results:
        show(name, results)
    spark_rate = results["mlflow serve (spark flavor) predict"]["per_second"]
    native_rate = results["mlflow serve (native xgboost) predict"]["per_second"]
    ours = results["lakeml predict"]["per_second"]
    print(f"predict throughput, lakeml / mlflow serve spark flavor: {ours / spark_rate:.1f}x")
    print(f"predict throughput, lakeml / mlflow serve native model: {ours / native_rate:.2f}x")
    print(f"memory per 1,000,000 scored entities in the lookup index: {mb:.0f} MB")


if __name__ == "__main__":
    main()
