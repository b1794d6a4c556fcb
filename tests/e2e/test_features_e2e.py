"""End to end on generated data: reconciliation, idempotence and incremental runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeml.core import delta_log, storage
from lakeml.core.config import Config, load_config
from lakeml.core.report import Report
from lakeml.pipeline import run_features
from lakeml.synthetic.generate import generate_events

CONF = Path(__file__).resolve().parents[2] / "conf" / "local.yaml"
FIRST_DAYS = 28
ALL_DAYS = 35  # one more week, so the weekly snapshot series keeps its anchor

pytestmark = [pytest.mark.e2e]


def config(root: Path) -> Config:
    return load_config(
        CONF,
        [
            f"storage.root={root}",
            "generate.users=40",
            f"generate.days={ALL_DAYS}",
            "generate.seed=7",
            # Enough dirt of every kind to show up in a small sample.
            "generate.dirt.logged_out_rate=0.03",
            "generate.dirt.duplicate_rate=0.01",
            "generate.dirt.malformed_rate=0.005",
            "generate.dirt.missing_field_rate=0.005",
            "generate.dirt.bad_value_rate=0.005",
        ],
    )


def quiet() -> Report:
    return Report("test", stream=open("/dev/null", "w"))  # noqa: SIM115


def versions(spark: SparkSession, cfg: Config) -> dict[str, int | None]:
    names = ("bronze", "silver", "quarantine", "features", "labels")
    return {name: storage.version(spark, cfg.table(name)) for name in names}


@pytest.fixture(scope="module")
def generated(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """35 days of events for 40 users, generated once for the module."""
    raw = tmp_path_factory.mktemp("raw")
    stats = generate_events(spark, config(raw).generate, str(raw)).as_dict()
    return raw, stats


@pytest.fixture(scope="module")
def full_build(
    spark: SparkSession, generated: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Config, dict]:
    """`lakeml features` on every generated day at once: built once, the oracle of the tests."""
    raw, _ = generated
    cfg = config(tmp_path_factory.mktemp("full"))
    return cfg, run_features(spark, cfg, quiet(), input_path=str(raw))


def copy_days(src: Path, dst: Path, days: slice) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob("*-events.json"))[days]:
        shutil.copy(f, dst / f.name)


def test_counts_reconcile_with_what_the_generator_wrote(
    spark: SparkSession, generated: tuple[Path, dict], full_build: tuple[Config, dict]
) -> None:
    raw, stats = generated
    cfg, summary = full_build

    # The generator counted every dirty line it wrote; each kind is quarantined, and exact
    # duplicates of clean events are dropped: nothing else may disappear.
    expected_quarantine = (
        stats["logged_out"] + stats["malformed"] + stats["missing_field"] + stats["bad_value"]
    )
    run = summary["this_run"]
    assert run["bronze_rows"] == stats["lines"]
    assert run["quarantined"] == expected_quarantine
    assert run["duplicates_removed"] == stats["duplicates"]
    assert run["silver_inserted"] == stats["lines"] - expected_quarantine - stats["duplicates"]
    assert run["reconciles"] is True
    assert storage.count(spark, cfg.table("bronze")) == stats["lines"]
    assert storage.count(spark, cfg.table("quarantine")) == expected_quarantine
    rules = storage.read(spark, cfg.table("quarantine")).groupBy("rule").count().collect()
    assert {r["rule"] for r in rules} >= {"malformed_json", "missing_user_id"}

    # Rerunning on the same input changes nothing: no table gets a new Delta version.
    before = versions(spark, cfg)
    again = run_features(spark, cfg, quiet(), input_path=str(raw))
    assert versions(spark, cfg) == before
    assert again["this_run"]["bronze_rows"] == 0
    assert again["this_run"]["snapshots_computed"] == []

    # Plain Delta tables: delta-rs, a reader without a JVM, opens each at the same version
    # with the same rows.
    for name, version in before.items():
        other = DeltaTable(cfg.table(name))
        assert other.version() == version, name
        assert len(other.to_pandas()) == storage.count(spark, cfg.table(name)), name
    keys = ["user_id", "snapshot_date"]
    by_rs = DeltaTable(cfg.table("features")).to_pandas().sort_values(keys, ignore_index=True)
    by_spark = storage.read(spark, cfg.table("features")).toPandas()
    by_spark = by_spark.sort_values(keys, ignore_index=True)[list(by_rs.columns)]
    pd.testing.assert_frame_equal(by_rs, by_spark, check_dtype=False)

    # File min/max are kept where something reads them: bronze's ingest time (silver's next
    # batch) and the label (training's preflight); row counts in every table.
    stats = {
        name: {k for f in delta_log.facts(cfg.table(name)).files for k in f if k.startswith("min.")}
        for name in before
    }
    assert stats == {
        "bronze": {"min.ingested_at"},
        "silver": set(),
        "quarantine": set(),
        "features": set(),
        "labels": {"min.churned"},
    }


def test_incremental_run_equals_a_full_rebuild_and_keeps_earlier_snapshots(
    spark: SparkSession,
    generated: tuple[Path, dict],
    full_build: tuple[Config, dict],
    tmp_path: Path,
) -> None:
    raw, _ = generated
    inc_raw = tmp_path / "incoming"
    cfg = config(tmp_path / "incremental")

    copy_days(raw, inc_raw, slice(0, FIRST_DAYS))
    first = run_features(spark, cfg, quiet(), input_path=str(inc_raw))
    # Pinned by Delta version: a cached read of the path would be refreshed by the next write.
    features_v1 = storage.read(
        spark, cfg.table("features"), version=storage.version(spark, cfg.table("features"))
    )
    first_dates = {r[0] for r in features_v1.select("snapshot_date").distinct().collect()}
    assert first["this_run"]["snapshots_computed"]

    copy_days(raw, inc_raw, slice(FIRST_DAYS, ALL_DAYS))
    second = run_features(spark, cfg, quiet(), input_path=str(inc_raw))
    # Days 0-27 are 2018-10-01..2018-10-28, so the first series (weekly, ending the day after the
    # last complete day, at least 7 days of history) is 10-08, 10-15, 10-22, 10-29.
    assert sorted(d.isoformat() for d in first_dates) == [
        "2018-10-08",
        "2018-10-15",
        "2018-10-22",
        "2018-10-29",
    ]
    # New events start on 10-29. Features at S read days before S, so only the new 11-05 needs
    # them. The label of S reads [S, S+13]: 10-22's horizon (to 11-04) is now fully observed,
    # 10-29's (to 11-11) still is not, and 10-08/10-15 were final. So: 10-22 and 11-05.
    assert sorted(second["this_run"]["snapshots_computed"]) == ["2018-10-22", "2018-11-05"]

    features_v2 = storage.read(spark, cfg.table("features"))
    # Features of every snapshot from the first run are unchanged by the new events.
    old_dates = [F.lit(d) for d in first_dates]
    assert_df_equality(
        features_v2.where(F.col("snapshot_date").isin(old_dates)),
        features_v1,
        ignore_row_order=True,
    )

    # The incremental result equals a from-scratch build on all the days.
    full_cfg, _ = full_build
    for name in ("features", "labels"):
        assert_df_equality(
            storage.read(spark, cfg.table(name)),
            storage.read(spark, full_cfg.table(name)),
            ignore_row_order=True,
        )


def test_the_sparkify_preset_gives_the_hand_written_features_and_labels(
    spark: SparkSession, full_build: tuple[Config, dict]
) -> None:
    """The declarative preset against the hand-written code it replaced, on the same silver."""
    from features import sparkify_reference as reference

    cfg, _ = full_build
    silver = storage.read(spark, cfg.table("silver"))
    features = storage.read(spark, cfg.table("features"))
    labels = storage.read(spark, cfg.table("labels"))
    snapshots = sorted(r[0] for r in features.select("snapshot_date").distinct().collect())
    labelled = sorted(r[0] for r in labels.select("snapshot_date").distinct().collect())
    last_day = silver.agg(F.max("event_date")).first()[0]
    assert len(snapshots) >= 3 and labelled and features.count() > 100
    expected = reference.build_features(silver, snapshots, cfg.features.windows)
    assert_df_equality(features, expected, ignore_row_order=True, ignore_nullable=True)
    horizon = cfg.features.label_horizon_days
    expected_labels = reference.build_labels(silver, labelled, horizon, last_day)
    assert_df_equality(labels, expected_labels, ignore_row_order=True, ignore_nullable=True)
    assert labels.where("churned = 1").count() > 0
