"""lakeml's xgboost vs scikit-learn's HistGradientBoosting on the same rows of a table.

    .venv/bin/python bench/sklearn_compare.py conf/telco.yaml

Runs `lakeml features` and `lakeml train` in-process with the config's source and split and
the model list set to xgboost alone, under a temporary storage root. Then rebuilds the very
same split (lakeml's own training set: same hash of the entity ids), fits scikit-learn's
HistGradientBoostingClassifier (categoricals native, 200 iterations at learning rate 0.05 as
in the Orange table's reference figures, otherwise defaults, random_state 0) on the rows
xgboost's refit used (train + validation), and scores both on the same test rows.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import pandas as pd
from benchlib import run_lakeml
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, roc_auc_score

from lakeml.core.config import load_config
from lakeml.core.session import get_spark
from lakeml.training import trainset
from lakeml.training.trainset import TEST, TRAIN, VALIDATION

XGBOOST = (
    "train.models=[{type: xgboost, grid: {max_depth: [3, 5], n_estimators: [400], "
    "learning_rate: [0.05]}}]"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("conf", nargs="?", default="conf/telco.yaml")
    parser.add_argument("--set", action="append", default=[], help="config override")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        sets = [f"storage.root={root}", XGBOOST, "train.baseline.enabled=false", *args.set]
        cfg = load_config(args.conf, sets)
        spark = get_spark(cfg.spark)
        flags = [x for s in sets for x in ("--set", s)]
        run_lakeml(["features", "--conf", args.conf, *flags])
        started = time.monotonic()
        summary = run_lakeml(["train", "--conf", args.conf, *flags])["train"]
        lakeml_seconds = time.monotonic() - started
        xgb = summary["champion"]["test"]

        t = cfg.train
        ts = trainset.load_training_set(spark, t, cfg.table("features"), cfg.table("labels"))
        cols = [*ts.spec.columns, t.label_col]
        fit = ts.window(TRAIN, VALIDATION).select(cols).toPandas()
        test = ts.window(TEST).select(cols).toPandas()
        for frame in (fit, test):
            for c in ts.spec.categorical:
                frame[c] = frame[c].astype("category")
        categories = {c: fit[c].cat.categories for c in ts.spec.categorical}
        for c, cats in categories.items():
            test[c] = pd.Categorical(test[c], categories=cats)
        started = time.monotonic()
        hgb = HistGradientBoostingClassifier(
            categorical_features="from_dtype", max_iter=200, learning_rate=0.05, random_state=0
        )
        hgb.fit(fit[list(ts.spec.columns)], fit[t.label_col])
        p = hgb.predict_proba(test[list(ts.spec.columns)])[:, 1]
        sk_seconds = time.monotonic() - started
        y = test[t.label_col].to_numpy()
        print(f"{args.conf}: fit on {len(fit)} rows (train + validation), tested on {len(test)}")
        print(
            f"  lakeml xgboost (refit): ROC AUC {xgb['roc_auc']:.3f}, PR AUC {xgb['pr_auc']:.3f} "
            f"(lakeml train {lakeml_seconds:.0f} s incl. tuning and MLflow)"
        )
        print(
            f"  scikit-learn HistGradientBoosting: ROC AUC {roc_auc_score(y, p):.3f}, "
            f"PR AUC {average_precision_score(y, p):.3f} ({sk_seconds:.1f} s)"
        )
        ts.cached.unpersist()
        spark.stop()


if __name__ == "__main__":
    main()
