from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path

import mlflow
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeml.core import storage
from lakeml.core.config import load_config
from lakeml.scoring import drift as monitor
from lakeml.scoring import psi
from lakeml.tracking import store as tracking

CONF = Path(__file__).resolve().parents[2] / "conf" / "local.yaml"
DAY = date(2018, 11, 8)
COUNTS = T.StructType(
    [
        T.StructField("feature", T.StringType()),
        T.StructField("bin", T.StringType()),
        T.StructField("n", T.LongType()),
    ]
)
VALUES = T.StructType([T.StructField("x", T.DoubleType()), T.StructField("c", T.StringType())])


def counts(spark: SparkSession, rows: list[tuple[str, str | None, int]]) -> DataFrame:
    return spark.createDataFrame(rows, COUNTS)


def values(
    spark: SparkSession, xs: list[float | None], cs: list[str | None] | None = None
) -> DataFrame:
    cs = cs or ["a"] * len(xs)
    return spark.createDataFrame(list(zip(xs, cs, strict=True)), VALUES)


def psi_of(stats: DataFrame) -> dict[str, float | None]:
    return {r["feature"]: r["psi"] for r in stats.collect()}


def test_psi_of_two_hand_counted_bins(spark: SparkSession) -> None:
    train = counts(spark, [("x", "a", 50), ("x", "b", 50)])
    scored = counts(spark, [("x", "a", 80), ("x", "b", 20)])
    # (0.8 - 0.5) ln(0.8 / 0.5) + (0.2 - 0.5) ln(0.2 / 0.5)
    # = 0.3 * 0.470004 + (-0.3) * (-0.916291) = 0.141001 + 0.274887 = 0.415888
    row = psi.psi_table(train, scored).first()
    assert row["psi"] == pytest.approx(0.415888, abs=1e-6)
    assert (row["null_rate_train"], row["null_rate_scored"]) == (0.0, 0.0)


def test_a_bin_empty_on_one_side_counts_as_epsilon(spark: SparkSession) -> None:
    train = counts(spark, [("c", "F", 50), ("c", "M", 50)])
    scored = counts(spark, [("c", "F", 50), ("c", "M", 40), ("c", "X", 10)])
    # F: 0; M: (0.4 - 0.5) ln(0.4 / 0.5) = 0.1 * 0.223144 = 0.022314;
    # X (unseen in training, share 1e-4): (0.1 - 0.0001) ln(0.1 / 0.0001) = 0.0999 * 6.907755
    # = 0.690085; total 0.712399
    assert psi_of(psi.psi_table(train, scored)) == {"c": pytest.approx(0.712399, abs=1e-6)}


def test_null_rates_come_from_the_missing_bin_and_psi_from_the_rest(spark: SparkSession) -> None:
    train = counts(spark, [("x", "a", 8), ("x", None, 2)])
    scored = counts(spark, [("x", "a", 5), ("x", None, 5)])
    # Non-null values all in bin a on both sides: PSI 0. Null rates 2/10 and 5/10.
    row = psi.psi_table(train, scored).first()
    assert (row["psi"], row["null_rate_train"], row["null_rate_scored"]) == (0.0, 0.2, 0.5)


def test_quantile_edges_of_one_to_a_hundred_are_the_deciles(spark: SparkSession) -> None:
    train = values(spark, [float(v) for v in range(1, 101)])
    edges = psi.edges_from_row(psi.quantile_edges(train, ["x"], 10).first(), ["x"])
    assert edges == {"x": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0]}


def test_a_value_falls_in_the_bin_whose_upper_edge_it_does_not_exceed(spark: SparkSession) -> None:
    df = values(spark, [5.0, 10.0, 10.5, 20.0, 25.0, None, float("nan")])
    out = df.select(psi.bin_index("x", [10.0, 20.0]).alias("bin"))
    # Bins 0: (-inf, 10], 1: (10, 20], 2: (20, inf); null and NaN are missing.
    assert [r["bin"] for r in out.collect()] == [0, 0, 1, 1, 2, None, None]


def test_bin_counts_list_every_bin_and_the_missing_values(spark: SparkSession) -> None:
    df = values(spark, [5.0, 10.0, 10.5, 25.0, None], ["F", "M", "F", None, "F"])
    out = psi.bin_counts(df, {"x": [10.0, 20.0]}, ["c"])
    # x, two edges -> three bins: 5 and 10 in bin 0, 10.5 in bin 1, 25 in bin 2, one null.
    # c: F three times, M once, one null.
    expected = {
        ("x", "000", 2), ("x", "001", 1), ("x", "002", 1), ("x", None, 1),
        ("c", "F", 3), ("c", "M", 1), ("c", None, 1),
    }  # fmt: skip
    assert {(r["feature"], r["bin"], r["n"]) for r in out.collect()} == expected


def test_bin_counts_of_many_wide_features_compile_without_falling_back(
    spark: SparkSession,
) -> None:
    # 80 features with 10 edges each, the size of the default feature table. With codegen
    # fallback off, generated code over the JVM's 64 KB method limit raises instead of
    # silently running interpreted.
    names = [f"f{i}" for i in range(80)]
    df = spark.createDataFrame([tuple(float(v + i) for i in range(80)) for v in range(3)], names)
    edges = {n: [float(k) for k in range(10)] for n in names}
    previous = spark.conf.get("spark.sql.codegen.fallback")
    spark.conf.set("spark.sql.codegen.fallback", "false")
    try:
        out = psi.bin_counts(df, edges, []).collect()
    finally:
        spark.conf.set("spark.sql.codegen.fallback", previous)
    # f0 holds 0, 1, 2: bins 000, 001, 002 (0 is not above edge 0); f79 holds 79..81: bin 010.
    got = {(r["feature"], r["bin"]): r["n"] for r in out}
    assert [got[("f0", b)] for b in ("000", "001", "002")] == [1, 1, 1]
    assert got[("f79", "010")] == 3
    assert sum(got.values()) == 240


def test_psi_is_near_zero_on_the_training_distribution_itself(spark: SparkSession) -> None:
    train = values(spark, [float(v) for v in range(1, 101)], ["F", "M"] * 50)
    stats = psi.compute_drift(train, train, [("x", "double"), ("c", "string")], 10)
    got = psi_of(stats)
    assert set(got) == {"x", "c"}
    assert all(abs(p) < 0.01 for p in got.values())


def test_psi_when_every_scored_value_is_above_the_training_max(spark: SparkSession) -> None:
    train = values(spark, [float(v) for v in range(1, 101)])
    scored = values(spark, [float(v) for v in range(101, 151)])
    # Ten training bins of ten values (share 0.1 each); all scored values land in the top bin:
    # 0.9 ln(1 / 0.1) + 9 (0.0001 - 0.1) ln(0.0001 / 0.1) = 2.072327 + 6.210765 = 8.283092
    got = psi_of(psi.compute_drift(train, scored, [("x", "double")], 10))
    assert got == {"x": pytest.approx(8.283092, abs=1e-5)}
    assert got["x"] > 0.25


def test_drift_rows_flag_a_large_psi_or_a_null_rate_move(spark: SparkSession) -> None:
    stats_schema = T.StructType(
        [
            T.StructField("feature", T.StringType()),
            T.StructField("psi", T.DoubleType()),
            T.StructField("null_rate_train", T.DoubleType()),
            T.StructField("null_rate_scored", T.DoubleType()),
        ]
    )
    stats = spark.createDataFrame(
        [
            ("a", 0.3, 0.0, 0.0),  # PSI over 0.2
            ("b", 0.1, 0.0, 0.05),  # both under their thresholds
            ("c", 0.0, 0.1, 0.3),  # null rate moved 0.2 > 0.1
            ("d", None, 0.0, 1.0),  # all missing now: no PSI, null rate moved 1.0
        ],
        stats_schema,
    )
    out = monitor.drift_rows(stats, DAY, "m", 3, psi_threshold=0.2, null_rate_threshold=0.1)
    got = out.select("feature", "null_rate_change", "drifted").orderBy("feature")
    # 0.3 - 0.1 is not exactly 0.2 in floating point: compare rounded.
    rows = {r["feature"]: (round(r["null_rate_change"], 6), r["drifted"]) for r in got.collect()}
    assert rows == {"a": (0.0, True), "b": (0.05, False), "c": (0.2, True), "d": (1.0, True)}
    assert {r["model_version"] for r in out.collect()} == {3}


def test_drift_warnings_name_each_drifted_feature_and_why() -> None:
    rows = [
        {"feature": "songs_7d", "psi": 8.2831, "null_rate_train": 0.0, "null_rate_scored": 0.0,
         "null_rate_change": 0.0, "drifted": True},
        {"feature": "gender", "psi": 0.01, "null_rate_train": 0.0, "null_rate_scored": 0.5,
         "null_rate_change": 0.5, "drifted": True},
        {"feature": "state", "psi": 0.01, "null_rate_train": 0.0, "null_rate_scored": 0.0,
         "null_rate_change": 0.0, "drifted": False},
    ]  # fmt: skip
    assert monitor.drift_warnings(rows, 0.2, 0.1) == [
        "gender: null rate 0.000 -> 0.500",
        "songs_7d: PSI 8.283 > 0.2",
    ]


# --- storage edge ----------------------------------------------------------------------------


def test_check_drift_replaces_its_rows_and_logs_a_monitoring_run(
    spark: SparkSession, tmp_path: Path
) -> None:
    cfg = load_config(CONF, [f"storage.root={tmp_path}"])
    tracking.connect(cfg.mlflow, cfg.tracking_uri, cfg.artifact_location)
    train_day = date(2018, 11, 1)
    features = spark.createDataFrame(
        [(train_day, float(v), "F" if v % 2 else "M") for v in range(1, 101)],
        "snapshot_date date, x double, c string",
    )
    features.write.format("delta").save(cfg.table("features"))
    tags = {
        "features_path": cfg.table("features"),
        "features_version": "0",
        "train_snapshots": train_day.isoformat(),
    }
    # Scored: x moved above the training max; c half missing.
    scored = values(spark, [float(v) for v in range(101, 111)], ["F", None] * 5)
    kwargs = dict(
        scored=scored,
        features=[("x", "double"), ("c", "string")],
        snapshot_date=DAY,
        model=("m", 3, tags),
        snapshot_col="snapshot_date",
    )
    monitor.check_drift(spark, cfg.monitor, cfg.table("drift"), **kwargs)
    result = monitor.check_drift(spark, cfg.monitor, cfg.table("drift"), **kwargs)
    drift = storage.read(spark, cfg.table("drift"))
    assert drift.count() == 2
    assert result.drifted_features == ["c", "x"]
    assert [w.split(":")[0] for w in result.warnings] == ["c", "x"]
    row = drift.filter(F.col("feature") == "c").first()
    assert (row["null_rate_train"], row["null_rate_scored"], row["null_rate_change"]) == (
        0.0,
        0.5,
        0.5,
    )
    metrics = mlflow.get_run(result.mlflow_run_id).data.metrics
    # 9 empty bins at 0.0001 and one holding everything: 8.283092 (see the test above).
    assert metrics["psi.x"] == pytest.approx(8.283092, abs=1e-5)
    assert metrics["null_rate_change.c"] == 0.5


def test_check_drift_without_training_lineage_is_skipped_with_the_reason(
    spark: SparkSession, tmp_path: Path
) -> None:
    cfg = load_config(CONF, [f"storage.root={tmp_path}"])
    result = monitor.check_drift(
        spark,
        cfg.monitor,
        cfg.table("drift"),
        scored=values(spark, [1.0]),
        features=[("x", "double")],
        snapshot_date=DAY,
        model=("m", 1, {"features_path": cfg.table("features")}),
        snapshot_col="snapshot_date",
    )
    assert "features_version, train_snapshots" in result.skipped
    assert result.warnings == []
    assert not storage.exists(spark, cfg.table("drift"))


def test_psi_of_two_share_vectors_by_hand() -> None:
    # (0.25 - 0.5) ln(0.25/0.5) + (0.75 - 0.5) ln(0.75/0.5) = 0.173287 + 0.101366
    assert psi.psi_from_shares([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.274653, abs=1e-6)


def test_the_score_reference_is_the_test_windows_deciles_and_the_score_psi_uses_it(
    spark: SparkSession,
) -> None:
    # Ten test-window scores, five bins: inner edges at the 20/40/60/80% quantiles.
    reference = json.loads(psi.score_distribution([i / 10 for i in range(1, 11)], bins=5))
    assert reference["edges"] == pytest.approx([0.28, 0.46, 0.64, 0.82], abs=2e-6)
    assert reference["shares"] == [0.2] * 5 and reference["rows"] == 10
    # Scores of this snapshot: four in the lowest bin, one in the highest, none between.
    scores = spark.createDataFrame(
        [(0.05,), (0.1,), (0.2,), (0.25,), (0.99,), (None,)], "churn_probability double"
    )
    got = psi.score_psi(scores, json.dumps(reference), "churn_probability")
    e = 1e-4  # an empty bin's share; the highest bin (0.2 vs 0.2) adds nothing
    by_hand = (0.8 - 0.2) * math.log(0.8 / 0.2) + 3 * (e - 0.2) * math.log(e / 0.2)
    assert got == pytest.approx(by_hand, abs=1e-9)


def test_drift_leaves_out_excluded_features_and_compares_the_latest_training_snapshot(
    spark: SparkSession, tmp_path: Path
) -> None:
    cfg = load_config(CONF, [f"storage.root={tmp_path}", "monitor.exclude=[x_total]"])
    tracking.connect(cfg.mlflow, cfg.tracking_uri, cfg.artifact_location)
    early, late = date(2018, 10, 25), date(2018, 11, 1)
    # x doubles from the early to the late training snapshot; the scored rows look like late.
    rows = [(early, float(v), float(v)) for v in range(1, 101)]
    rows += [(late, float(2 * v), float(v)) for v in range(1, 101)]
    spark.createDataFrame(rows, "snapshot_date date, x double, x_total double").write.format(
        "delta"
    ).save(cfg.table("features"))
    tags = {
        "features_path": cfg.table("features"),
        "features_version": "0",
        "train_snapshots": f"{early},{late}",
    }
    scored = spark.createDataFrame(
        [(float(2 * v), float(10 * v)) for v in range(1, 101)], "x double, x_total double"
    )
    kwargs = dict(
        scored=scored,
        features=[("x", "double"), ("x_total", "double")],
        snapshot_date=DAY,
        model=("m", 3, tags),
        snapshot_col="snapshot_date",
    )
    latest = monitor.check_drift(spark, cfg.monitor, cfg.table("drift"), **kwargs)
    assert latest.reference == "latest_train_snapshot" and latest.excluded == ["x_total"]
    assert latest.features_checked == 1 and latest.drifted_features == []
    window = cfg.monitor.model_copy(update={"reference": "train_window"})
    assert monitor.check_drift(spark, window, cfg.table("drift"), **kwargs).drifted_features == [
        "x"
    ]
