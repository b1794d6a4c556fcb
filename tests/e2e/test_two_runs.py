"""Weeks pass: the pipeline runs on 60 days of events, then again once 21 more days have
arrived. The snapshot the first run scored has matured by then (its churn horizon passed), so
the second run writes its realized performance, equal to pandas on the joined rows. Slow (two
whole pipelines): `make slow-test`, which CI runs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from realized_by_hand import expected

from lakeml.core.config import load_config
from lakeml.core.report import Report
from lakeml.pipeline import run_pipeline
from lakeml.synthetic.generate import render_files

CONF = Path(__file__).resolve().parents[2] / "conf" / "local.yaml"
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_later_run_measures_the_scores_of_an_earlier_one(
    spark: SparkSession, tmp_path: Path
) -> None:
    overrides = [
        f"storage.root={tmp_path}",
        "generate.users=250",
        "generate.days=81",
        "train.models=[{type: xgboost, grid: {max_depth: [3], n_estimators: [80]}}]",
    ]
    cfg = load_config(CONF, overrides)
    files, _ = render_files(cfg.generate)
    days = sorted(files)
    raw = Path(cfg.source_path)
    raw.mkdir(parents=True)
    for name in days[:60]:
        (raw / name).write_bytes(files[name])

    first = run_pipeline(spark, cfg, Report("pipeline", stream=io.StringIO()))
    scored = first["score"]
    version, day = scored["model_version"], scored["snapshot_date"]
    assert first["realized"]["rows"] == [] and first["realized"]["waiting_for_labels"] == [day]

    for name in days[60:]:
        (raw / name).write_bytes(files[name])
    second = run_pipeline(spark, cfg, Report("pipeline", stream=io.StringIO()))
    assert second["score"]["snapshot_date"] > day
    measured = [r for r in second["realized"]["rows"] if r["snapshot_date"] == day]
    assert [(r["model_version"]) for r in measured] == [version]

    perf = DeltaTable(cfg.table("performance")).to_pandas()
    row = perf[(perf.snapshot_date.astype(str) == day) & (perf.model_version == version)].iloc[0]
    scores = DeltaTable(cfg.table("scores")).to_pandas()
    scores = scores[(scores.snapshot_date.astype(str) == day) & (scores.model_version == version)]
    labels = DeltaTable(cfg.table("labels")).to_pandas()
    joined = scores.merge(labels, on=["user_id", "snapshot_date"])
    assert len(joined) == len(scores) == row["rows"]  # every scored user has a label now
    for key, value in expected(joined).items():
        assert row[key] == pytest.approx(value, abs=1e-9), key
