from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from scoring_lake import (
    FEATURE_SCHEMA,
    FEATURES,
    LATEST_DAY,
    SCORES_SCHEMA,
    TRAIN_DAY,
    USERS,
    Lake,
    cfg_for,
    columns,
    feature_rows,
    quiet,
    read_scores,
)

from lakeml.core import storage
from lakeml.core.config import Config
from lakeml.core.errors import LakemlError
from lakeml.core.report import Report
from lakeml.pipeline import run_score
from lakeml.scoring import contract, model_ref, scorer
from lakeml.scoring.model_ref import Feature
from lakeml.tracking import store as tracking


@pytest.fixture(scope="module")
def champion_latest(
    spark: SparkSession, lake: Lake, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Config, Report, dict[str, Any]]:
    """The champion over the default snapshot (the latest, whose songs moved up by 100)."""
    cfg = cfg_for(lake, tmp_path_factory.mktemp("champion_latest"))
    report = quiet()
    result = run_score(spark, cfg, report)
    return cfg, report, result


@pytest.fixture(scope="module")
def both_on_training(
    spark: SparkSession, lake: Lake, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Config, dict[str, Any], dict[str, Any]]:
    """The Spark champion and the sklearn baseline over the training snapshot, one table."""
    cfg = cfg_for(lake, tmp_path_factory.mktemp("both_on_training"))
    day = TRAIN_DAY.isoformat()
    spark_result = run_score(spark, cfg, quiet(), snapshot_date=day)
    pyfunc_result = run_score(
        spark, cfg, quiet(), model_uri=f"models:/{lake.baseline}/1", snapshot_date=day
    )
    return cfg, spark_result, pyfunc_result


# --- pure parts ----------------------------------------------------------------------------


def test_model_uris_of_every_accepted_form_are_parsed() -> None:
    assert model_ref.parse_model_uri("models:/churn@champion") == ("alias", "churn", "champion")
    assert model_ref.parse_model_uri("models:/churn/3") == ("version", "churn", "3")
    assert model_ref.parse_model_uri("runs:/abc123/model") == ("run", "abc123", "model")


@pytest.mark.parametrize("uri", ["churn", "models:/churn", "models:/churn/Production", "s3://x"])
def test_other_model_uris_are_rejected_with_the_accepted_forms(uri: str) -> None:
    with pytest.raises(LakemlError, match=r"models:/<name>@<alias>"):
        model_ref.parse_model_uri(uri)


def test_input_check_names_every_missing_and_mistyped_column() -> None:
    schema = T.StructType(
        [
            T.StructField("user_id", T.StringType()),
            T.StructField("songs_7d", T.StringType()),
            T.StructField("thumbs_down_28d", T.IntegerType()),  # widens to double: fine
        ]
    )
    features = [Feature("songs_7d", "long"), Feature("thumbs_down_28d", "double")]
    features.append(Feature("gender", "string"))
    with pytest.raises(LakemlError) as err:
        contract.check_input(schema, features, "user_id", "models:/m/1", "tbl")
    message = str(err.value)
    assert "missing columns: gender" in message
    assert "mistyped columns: songs_7d (string, model expects long)" in message
    assert "thumbs_down_28d" not in message


def test_risk_deciles_and_labels_by_hand_on_ten_rows(spark: SparkSession) -> None:
    schema = T.StructType(
        [
            T.StructField("user_id", T.StringType()),
            T.StructField("snapshot_date", T.DateType()),
            T.StructField("churn_probability", T.DoubleType()),
        ]
    )
    probabilities = [0.05, 0.95, 0.15, 0.85, 0.25, 0.75, 0.35, 0.65, 0.45, 0.55]
    rows = [(f"u{i}", TRAIN_DAY, p) for i, p in enumerate(probabilities)]
    out = scorer.score_table(spark.createDataFrame(rows, schema), "user_id", 0.6, 10, "m", 2, "r")
    # Ten rows, ten bands: rank by probability, highest first: u1 .95 -> 1, u3 .85 -> 2,
    # u5 .75 -> 3, u7 .65 -> 4, u9 .55 -> 5, u8 .45 -> 6, u6 .35 -> 7, u4 .25 -> 8,
    # u2 .15 -> 9, u0 .05 -> 10. Labelled churn at threshold 0.6: .95 .85 .75 .65 only.
    expected = {
        "u1": (1, 1), "u3": (2, 1), "u5": (3, 1), "u7": (4, 1), "u9": (5, 0),
        "u8": (6, 0), "u6": (7, 0), "u4": (8, 0), "u2": (9, 0), "u0": (10, 0),
    }  # fmt: skip
    got = {
        r["user_id"]: (r["risk_decile"], r["predicted_churn"])
        for r in out.select("user_id", "risk_decile", "predicted_churn").collect()
    }
    assert got == expected
    # Five bands over ten rows: two per band, in the same order.
    five = scorer.score_table(spark.createDataFrame(rows, schema), "user_id", 0.6, 5, "m", 2, "r")
    bands = {r["user_id"]: r["risk_decile"] for r in five.collect()}
    assert bands == {
        "u1": 1, "u3": 1, "u5": 2, "u7": 2, "u9": 3, "u8": 3, "u6": 4, "u4": 4, "u2": 5, "u0": 5
    }  # fmt: skip
    assert columns(out.schema) == columns(SCORES_SCHEMA)


# --- the stage against a real registry -------------------------------------------------------


def test_scores_table_has_the_documented_schema_and_one_row_per_user(
    spark: SparkSession, champion_latest: tuple[Config, Report, dict[str, Any]]
) -> None:
    cfg, _, result = champion_latest
    scores = read_scores(spark, cfg)
    assert columns(scores.schema) == columns(SCORES_SCHEMA)
    assert result["snapshot_date"] == LATEST_DAY.isoformat()
    assert result["rows_scored"] == USERS
    keys = scores.select("user_id", "snapshot_date", "model_name", "model_version").distinct()
    assert keys.count() == USERS
    assert {r["snapshot_date"] for r in scores.select("snapshot_date").collect()} == {LATEST_DAY}


def test_summary_names_the_resolved_model_and_the_table_version(
    champion_latest: tuple[Config, Report, dict[str, Any]], lake: Lake
) -> None:
    cfg, report, result = champion_latest
    summary = report.summary["score"]
    assert summary["model_uri"] == f"models:/{lake.name}@champion"
    assert (summary["model_name"], summary["model_version"]) == (lake.name, 1)
    assert summary["run_id"] == lake.spark_run_id
    assert summary["scorer"] == "spark"
    assert summary["scores_table"] == {"path": cfg.table("scores"), "version": 0}
    assert result["summary_lines"]


def test_rescoring_the_same_snapshot_and_model_replaces_its_rows(
    spark: SparkSession, lake: Lake, tmp_path: Path
) -> None:
    cfg = cfg_for(lake, tmp_path)
    run_score(spark, cfg, quiet())
    first_at = read_scores(spark, cfg).agg(F.max("scored_at")).first()[0]
    run_score(spark, cfg, quiet())
    scores = read_scores(spark, cfg)
    assert scores.count() == USERS
    assert scores.select("scored_at").distinct().count() == 1
    assert scores.agg(F.max("scored_at")).first()[0] > first_at
    assert storage.version(spark, cfg.table("scores")) == 1
    # The drift rows are replaced too: one per feature.
    assert storage.read(spark, cfg.table("drift")).count() == len(FEATURES)


def test_spark_and_pyfunc_models_score_one_table_side_by_side(
    spark: SparkSession, both_on_training: tuple[Config, dict[str, Any], dict[str, Any]], lake: Lake
) -> None:
    cfg, spark_result, pyfunc_result = both_on_training
    assert (spark_result["scorer"], pyfunc_result["scorer"]) == ("spark", "pyfunc")
    scores = read_scores(spark, cfg)
    assert columns(scores.schema) == columns(SCORES_SCHEMA)
    per_model = {
        (r["model_name"], r["model_version"]): r["count"]
        for r in scores.groupBy("model_name", "model_version").count().collect()
    }
    assert per_model == {(lake.name, 1): USERS, (lake.baseline, 1): USERS}


def test_pyfunc_scores_equal_the_sklearn_model_in_pandas(
    spark: SparkSession, both_on_training: tuple[Config, dict[str, Any], dict[str, Any]], lake: Lake
) -> None:
    cfg, _, _ = both_on_training
    scored = (
        read_scores(spark, cfg)
        .filter(F.col("model_name") == lake.baseline)
        .select("user_id", "churn_probability", "predicted_churn")
        .toPandas()
        .set_index("user_id")
    )
    rows = pd.DataFrame(feature_rows(TRAIN_DAY), columns=FEATURE_SCHEMA.names)
    sample = rows[rows["user_id"].isin(["u00", "u03", "u07", "u12", "u19"])].set_index("user_id")
    logged = mlflow.sklearn.load_model(f"models:/{lake.baseline}/1")
    expected = logged.predict_proba(sample[FEATURES])[:, 1]
    got = scored.loc[sample.index, "churn_probability"].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert list(scored.loc[sample.index, "predicted_churn"]) == [int(p >= 0.5) for p in expected]


def test_spark_scores_equal_the_logistic_formula_of_the_logged_model(
    spark: SparkSession, both_on_training: tuple[Config, dict[str, Any], dict[str, Any]], lake: Lake
) -> None:
    cfg, _, _ = both_on_training
    scored = {
        r["user_id"]: r["churn_probability"]
        for r in read_scores(spark, cfg).filter(F.col("model_name") == lake.name).collect()
    }
    logged = mlflow.spark.load_model(f"models:/{lake.name}/1")
    indexer, _, lr = logged.stages
    w, b = lr.coefficients.toArray(), lr.intercept
    for user, _, songs, thumbs, gender in feature_rows(TRAIN_DAY)[::4]:
        x = np.array([songs, thumbs, indexer.labels.index(gender)], dtype=float)
        expected = 1.0 / (1.0 + math.exp(-(w @ x + b)))
        assert scored[user] == pytest.approx(expected, rel=1e-9)


def test_drift_is_near_zero_when_scoring_the_training_window(
    spark: SparkSession, both_on_training: tuple[Config, dict[str, Any], dict[str, Any]]
) -> None:
    cfg, spark_result, pyfunc_result = both_on_training
    assert spark_result["drift_warnings"] == pyfunc_result["drift_warnings"] == []
    drift = storage.read(spark, cfg.table("drift"))
    assert drift.count() == 2 * len(FEATURES)
    assert drift.agg(F.max("psi")).first()[0] < 0.01
    assert drift.filter(F.col("drifted")).count() == 0


def test_drift_names_the_shifted_feature_in_table_summary_and_mlflow(
    spark: SparkSession, champion_latest: tuple[Config, Report, dict[str, Any]], lake: Lake
) -> None:
    cfg, report, result = champion_latest
    drift = storage.read(spark, cfg.table("drift")).select("feature", "psi", "drifted")
    # songs_7d: 20 training values 0..19 in 10 quantile bins of 2 (share 0.1 each); every scored
    # value (100..119) is above the last edge, so the top bin has share 1 and nine are empty
    # (epsilon 1e-4): 0.9 ln(1/0.1) + 9 (1e-4 - 0.1) ln(1e-4/0.1) = 2.0723 + 6.2108 = 8.2831.
    # thumbs_down_28d and gender are distributed exactly as in training: PSI 0.
    got = {r["feature"]: (round(r["psi"], 4), r["drifted"]) for r in drift.collect()}
    assert got == {
        "songs_7d": (8.2831, True),
        "thumbs_down_28d": (0.0, False),
        "gender": (0.0, False),
    }
    assert [w.split(":")[0] for w in result["drift_warnings"]] == ["songs_7d"]
    assert report.summary["drift_warnings"] == result["drift_warnings"]
    assert "WARNING" in report._stream.getvalue()
    run = mlflow.get_run(result["drift"]["mlflow_run_id"])
    assert run.data.metrics["psi.songs_7d"] == pytest.approx(8.2831, abs=1e-4)
    assert run.data.tags["model_name"] == lake.name


def test_a_run_uri_resolves_to_its_registered_version(lake: Lake) -> None:
    client = tracking.connect(lake.cfg.mlflow, lake.cfg.tracking_uri, lake.cfg.artifact_location)
    ref = model_ref.resolve_model(client, f"runs:/{lake.spark_run_id}/model")
    assert (ref.name, ref.version, ref.run_id) == (lake.name, 1, lake.spark_run_id)
    assert ref.tags["threshold"] == "0.5"


def test_missing_alias_fails_naming_it_and_writes_nothing(
    spark: SparkSession, lake: Lake, tmp_path: Path
) -> None:
    cfg = cfg_for(lake, tmp_path)
    with pytest.raises(LakemlError, match=r"alias 'nightly' of registered model 'lakeml-churn'"):
        run_score(spark, cfg, quiet(), model_uri=f"models:/{lake.name}@nightly")
    with pytest.raises(LakemlError, match=r"version 7 of registered model"):
        run_score(spark, cfg, quiet(), model_uri=f"models:/{lake.name}/7")
    assert not storage.exists(spark, cfg.table("scores"))
    assert not storage.exists(spark, cfg.table("drift"))


def write_input(spark: SparkSession, path: Path, df: DataFrame, fmt: str) -> str:
    df.write.format(fmt).save(str(path))
    return str(path)


def training_frame(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(feature_rows(TRAIN_DAY), FEATURE_SCHEMA)


@pytest.mark.parametrize(
    ("case", "fmt", "message"),
    [
        ("missing", "parquet", r"missing columns: thumbs_down_28d"),
        ("mistyped", "delta", r"mistyped columns: songs_7d \(string, model expects long\)"),
        ("empty", "delta", r"is empty: there is nothing to score"),
    ],
)
def test_bad_input_fails_clearly_and_writes_nothing(
    spark: SparkSession, lake: Lake, tmp_path: Path, case: str, fmt: str, message: str
) -> None:
    cfg = cfg_for(lake, tmp_path)
    df = training_frame(spark)
    if case == "missing":
        df = df.drop("thumbs_down_28d")
    elif case == "mistyped":
        df = df.withColumn("songs_7d", F.col("songs_7d").cast("string"))
    else:
        df = df.limit(0)
    path = write_input(spark, tmp_path / "input", df, fmt)
    with pytest.raises(LakemlError, match=message):
        run_score(spark, cfg, quiet(), input_path=path)
    assert not storage.exists(spark, cfg.table("scores"))
    assert not storage.exists(spark, cfg.table("drift"))


def test_a_failed_run_leaves_the_scores_table_at_its_version(
    spark: SparkSession, champion_latest: tuple[Config, Report, dict[str, Any]], tmp_path: Path
) -> None:
    cfg, _, _ = champion_latest
    before = storage.version(spark, cfg.table("scores"))
    rows_before = read_scores(spark, cfg).count()
    bad = write_input(spark, tmp_path / "bad", training_frame(spark).drop("gender"), "delta")
    with pytest.raises(LakemlError, match=r"missing columns: gender"):
        run_score(spark, cfg, quiet(), input_path=bad)
    assert storage.version(spark, cfg.table("scores")) == before
    assert read_scores(spark, cfg).count() == rows_before == USERS


def test_a_snapshot_without_rows_fails_listing_the_snapshots_there(
    spark: SparkSession, lake: Lake, tmp_path: Path
) -> None:
    cfg = cfg_for(lake, tmp_path)
    with pytest.raises(
        LakemlError, match=r"no rows for snapshot 2018-12-24.*2018-11-08, 2018-11-01"
    ):
        run_score(spark, cfg, quiet(), snapshot_date="2018-12-24")
    assert not storage.exists(spark, cfg.table("scores"))


def test_a_pyfunc_model_refuses_nulls_in_integer_columns_before_scoring(
    spark: SparkSession, lake: Lake, tmp_path: Path
) -> None:
    cfg = cfg_for(lake, tmp_path)
    with_null = training_frame(spark).withColumn(
        "songs_7d", F.when(F.col("user_id") != "u03", F.col("songs_7d"))
    )
    path = write_input(spark, tmp_path / "input", with_null, "delta")
    with pytest.raises(LakemlError, match=r"songs_7d \(1 nulls\)"):
        run_score(spark, cfg, quiet(), model_uri=f"models:/{lake.baseline}/1", input_path=path)
    assert not storage.exists(spark, cfg.table("scores"))


def test_rows_without_or_repeating_the_entity_id_are_refused(
    spark: SparkSession, lake: Lake, tmp_path: Path
) -> None:
    cfg = cfg_for(lake, tmp_path)
    repeated = training_frame(spark).unionByName(training_frame(spark).limit(2))
    path = write_input(spark, tmp_path / "input", repeated, "delta")
    with pytest.raises(LakemlError, match=r"0 rows without user_id and 2 repeated user_id"):
        run_score(spark, cfg, quiet(), input_path=path)
    assert not storage.exists(spark, cfg.table("scores"))


def test_conformed_input_takes_the_signature_types(spark: SparkSession) -> None:
    schema = T.StructType(
        [
            T.StructField("user_id", T.StringType()),
            T.StructField("snap", T.DateType()),
            T.StructField("songs_7d", T.IntegerType()),
            T.StructField("extra", T.StringType()),
        ]
    )
    df = spark.createDataFrame([("u1", TRAIN_DAY, 3, "x")], schema)
    out = contract.conform_input(df, [Feature("songs_7d", "double")], "user_id", "snap")
    expected = spark.createDataFrame(
        [("u1", TRAIN_DAY, 3.0)],
        T.StructType(
            [
                T.StructField("user_id", T.StringType()),
                T.StructField("snapshot_date", T.DateType()),
                T.StructField("songs_7d", T.DoubleType()),
            ]
        ),
    )
    assert_df_equality(out, expected)
