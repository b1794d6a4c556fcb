"""xgboost (xgboost.spark) vs Spark ML's GBT: fit seconds and test AUC, same trees and depth.

    .venv/bin/python bench/xgboost_bench.py conf/local.yaml [--users N] [--trees 50] [--depth 5]
    .venv/bin/python bench/xgboost_bench.py conf/local.yaml --data synthetic

`--data generated` (the default): the default sample of the journey, made as `make run` makes
it (`lakeml generate` then `lakeml features`, in-process, under a temporary root), with the
config's `generate.users` (or `--users`) and 10x that many users. `--data synthetic`: gold
tables shaped like the default journey's (weekly snapshots x users, ~70 feature columns; see
tests/training/synthetic_gold.py), quick to make at any size. For each size both model types
are fit through lakeml's own pipeline (`models.refit`: preprocessing + classifier,
no early stopping, so both grow exactly `--trees` trees of depth `--depth`, learning rate 0.1)
on the train + validation windows, one after the other in one SparkSession, and scored on the
test window. Prints fit seconds, their ratio (GBT / xgboost) and test ROC/PR AUC.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "training"))

from benchlib import run_lakeml  # noqa: E402
from synthetic_gold import snapshot_dates, synthetic_frames, to_spark  # noqa: E402

from lakeml.core import storage  # noqa: E402
from lakeml.core.config import ModelSpec, XGBoostConfig, load_config  # noqa: E402
from lakeml.core.session import get_spark  # noqa: E402
from lakeml.training import models, trainset, tune  # noqa: E402
from lakeml.training.trainset import TRAIN, VALIDATION, WEIGHT_COL  # noqa: E402


def fit_and_score(spark, cfg, ts, spec: ModelSpec, params: dict) -> tuple[float, dict]:
    t = cfg.train
    [cand] = models.candidates(
        [spec], t.label_col, WEIGHT_COL, t.seed, t.primary_metric, XGBoostConfig()
    )
    counts = tune.merged_counts(ts.counts[TRAIN], ts.counts[VALIDATION])
    weights = trainset.class_weights(counts, t.class_weight)
    fit = trainset.with_weights(ts.window(TRAIN, VALIDATION), weights, t.label_col)
    started = time.monotonic()
    model = models.refit(cand, ts.spec, params, fit)
    seconds = time.monotonic() - started
    _, _, metrics = tune.score_test_window(model, ts, 0.5, t)
    return seconds, metrics


def synthetic_tables(spark, users: int, snapshots: int, root: Path) -> dict[str, str]:
    features, labels = synthetic_frames(users, snapshots, 62, seed=7)
    labelled = set(snapshot_dates(snapshots)[:-2])
    labels = labels[labels["snapshot_date"].isin(labelled)]
    paths = {"features": str(root / "features"), "labels": str(root / "labels")}
    fdf, ldf = to_spark(spark, features, labels, 62)
    storage.rebuild(fdf, paths["features"], ["snapshot_date"])
    storage.rebuild(ldf, paths["labels"], ["snapshot_date"])
    return paths


def generated_tables(conf: str, users: int, root: Path) -> dict[str, str]:
    """The journey's own gold tables for `users` users: `lakeml generate` + `features`."""
    sets = ["--set", f"storage.root={root}", "--set", f"generate.users={users}"]
    for step in ("generate", "features"):
        started = time.monotonic()
        run_lakeml([step, "--conf", conf, *sets])
        print(f"  lakeml {step} ({users} users): {time.monotonic() - started:.0f} s")
    cfg = load_config(conf, [f"storage.root={root}"])
    return {"features": cfg.table("features"), "labels": cfg.table("labels")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("conf", nargs="?", default="conf/local.yaml")
    parser.add_argument("--data", choices=["generated", "synthetic"], default="generated")
    parser.add_argument("--users", type=int, help="default: generate.users (synthetic: 450)")
    parser.add_argument("--snapshots", type=int, default=8, help="synthetic data only")
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--depth", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(args.conf, [f"storage.root={tmp}"])
        spark = get_spark(cfg.spark)
        gbt = ModelSpec(type="gbt")
        xgb = ModelSpec(type="xgboost")
        gbt_params = {"maxIter": args.trees, "maxDepth": args.depth, "stepSize": 0.1}
        xgb_params = {"n_estimators": args.trees, "max_depth": args.depth, "learning_rate": 0.1}
        base = args.users or (cfg.generate.users if args.data == "generated" else 450)
        shape = f"{args.trees} trees of depth {args.depth}, learning rate 0.1"
        print(f"{args.data} data, {shape}")
        for users in (base, 10 * base):
            root = Path(tmp) / f"u{users}"
            if args.data == "generated":
                paths = generated_tables(args.conf, users, root)
            else:
                paths = synthetic_tables(spark, users, args.snapshots, root)
            ts = trainset.load_training_set(spark, cfg.train, paths["features"], paths["labels"])
            rows = sum(sum(c.values()) for c in ts.counts.values())
            print(
                f"{'users':>7} {'rows':>7}  {'model':8} {'fit s':>7} {'ROC AUC':>8} {'PR AUC':>7}"
            )
            try:
                g_s, g_m = fit_and_score(spark, cfg, ts, gbt, gbt_params)
                x_s, x_m = fit_and_score(spark, cfg, ts, xgb, xgb_params)
            finally:
                ts.cached.unpersist()
            for name, s, m in (("gbt", g_s, g_m), ("xgboost", x_s, x_m)):
                aucs = f"{m['roc_auc']:8.3f} {m['pr_auc']:7.3f}"
                print(f"{users:7d} {rows:7d}  {name:8} {s:7.1f} {aucs}")
            print(f"{'':17}fit-time ratio gbt / xgboost: {g_s / x_s:.1f}x")
        spark.stop()


if __name__ == "__main__":
    main()
