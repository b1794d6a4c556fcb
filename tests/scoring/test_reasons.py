"""Reason codes: exact per-row contributions of logistic regression and xgboost, summed back
to raw columns, the top ones in the scores table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyspark.ml import Pipeline
from pyspark.ml.functions import vector_to_array
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeml.scoring import reasons, scorer
from lakeml.training import models
from lakeml.training.trainset import FeatureSpec

# Five customers: tenure (a number, one missing), plan (a categorical).
ROWS = [
    ("a", 1.0, "monthly", 1),
    ("b", 30.0, "yearly", 0),
    ("c", 2.0, "monthly", 1),
    ("d", None, "yearly", 0),
    ("e", 24.0, "monthly", 0),
]
SCHEMA = "id string, tenure double, plan string, churned int"
SPEC = FeatureSpec(("tenure",), ("plan",), None)  # schema unused here


def fit(spark: SparkSession, model_type: str, estimator) -> tuple:
    df = spark.createDataFrame(ROWS, SCHEMA).withColumn("snapshot_date", F.current_date())
    stages = models.pipeline_stages(SPEC, model_type)
    model = Pipeline(stages=[*stages, estimator]).fit(df)
    return df, model


def test_logistic_regression_contributions_by_hand_on_five_rows(spark: SparkSession) -> None:
    from pyspark.ml.classification import LogisticRegression

    lr = LogisticRegression(
        featuresCol=models.FEATURES, labelCol="churned", regParam=0.1, maxIter=50
    )
    df, model = fit(spark, "logistic_regression", lr)
    out = model.transform(df)
    got = out.select(
        "id",
        *[c.alias(name) for name, c in reasons.all_contributions(model, out).items()],
        vector_to_array("rawPrediction")[1].alias("margin"),
    ).toPandas()

    # By hand, from the fitted parameters: the median-imputed tenure (d: median of 1, 30,
    # 2, 24 = 2.0 in Spark's approximate median), plan one-hot (monthly, yearly; the slot
    # kept for unseen values is the one dropped), standardised by the sample std; a row's
    # contribution is coef * (x - mean) / std, the plan's two slots summed.
    tenure = np.array([1.0, 30.0, 2.0, 2.0, 24.0])
    monthly = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    coef = model.stages[-1].coefficients.toArray()
    intercept = model.stages[-1].intercept
    x = np.vstack([tenure, monthly, 1.0 - monthly]).T
    mean, std = x.mean(axis=0), x.std(axis=0, ddof=1)
    expected = coef * (x - mean) / std
    assert got["tenure"].to_numpy() == pytest.approx(expected[:, 0], abs=1e-9)
    assert got["plan"].to_numpy() == pytest.approx(expected[:, 1] + expected[:, 2], abs=1e-9)
    # Contributions + the base margin (the margin at the mean) = each row's margin.
    base = intercept + float(coef @ (mean / std))
    total = got["tenure"] + got["plan"] + base
    assert total.to_numpy() == pytest.approx(got["margin"].to_numpy(), abs=1e-9)


def test_xgboost_contributions_sum_to_its_margin_for_every_row(spark: SparkSession) -> None:
    from xgboost.spark import SparkXGBClassifier

    xgb = SparkXGBClassifier(
        features_col=models.ASSEMBLED, label_col="churned", n_estimators=5, max_depth=2,
        num_workers=1, base_score=0.4, min_child_weight=0.0, verbosity=0,
    )  # fmt: skip
    df, model = fit(spark, "xgboost", xgb)
    assert reasons.prepare(model)
    out = model.transform(df)
    # The raw contributions, bias included (xgboost's own output, not lakeml's sums).
    raw = out.select(F.col(reasons.CONTRIB)[0].alias("c")).collect()
    by_column = reasons.all_contributions(model, out)
    assert set(by_column) == {"tenure", "plan"}  # raw columns, never vector slots
    got = out.select(
        *[c.alias(n) for n, c in by_column.items()],
        vector_to_array("rawPrediction")[1].alias("margin"),
    ).collect()
    for row, contrib in zip(got, raw, strict=True):
        bias = contrib["c"][-1]
        assert row["tenure"] + row["plan"] + bias == pytest.approx(row["margin"], abs=1e-5)
        assert math.fsum(contrib["c"]) == pytest.approx(row["margin"], abs=1e-5)


def test_top_reasons_keep_the_largest_raising_columns_with_their_values(
    spark: SparkSession,
) -> None:
    df = spark.createDataFrame(
        [("a", 5.0, "x", 0.1, -0.2), ("b", 7.0, "y", -0.3, -0.1)],
        "id string, tenure double, plan string, ct double, cp double",
    )
    top = reasons.top_reasons({"tenure": F.col("ct"), "plan": F.col("cp")}, 3)
    got = {r["id"]: r["r"] for r in df.select("id", top.alias("r")).collect()}
    # a: only tenure raises its risk; b: nothing does (an empty list, not null).
    assert [(e["feature"], e["value"], e["contribution"]) for e in got["a"]] == [
        ("tenure", "5.0", 0.1)
    ]
    assert got["b"] == []
    two = reasons.top_reasons({"tenure": F.col("ct"), "plan": -F.col("cp")}, 1)
    [row] = df.where("id = 'a'").select(two.alias("r")).collect()
    assert [(e["feature"], e["contribution"]) for e in row["r"]] == [("plan", 0.2)]


def test_scores_carry_reasons_for_xgboost_and_none_for_a_random_forest(
    spark: SparkSession,
) -> None:
    from pyspark.ml.classification import RandomForestClassifier
    from xgboost.spark import SparkXGBClassifier

    xgb = SparkXGBClassifier(
        features_col=models.ASSEMBLED, label_col="churned", n_estimators=5, max_depth=2,
        num_workers=1, min_child_weight=0.0, verbosity=0,
    )  # fmt: skip
    df, model = fit(spark, "xgboost", xgb)
    rows = scorer.spark_model_probability(model, df, "id", top_k=2).collect()
    for r in rows:
        assert len(r["reasons"]) <= 2
        assert all(e["feature"] in {"tenure", "plan"} for e in r["reasons"])
        contributions = [e["contribution"] for e in r["reasons"]]
        assert contributions == sorted(contributions, reverse=True)
        assert all(c > 0 for c in contributions)
    assert any(r["reasons"] for r in rows)
    rf = RandomForestClassifier(featuresCol=models.ASSEMBLED, labelCol="churned", numTrees=3)
    df, forest = fit(spark, "random_forest", rf)
    assert not reasons.prepare(forest)
    rows = scorer.spark_model_probability(forest, df, "id", top_k=2).collect()
    assert {r["reasons"] is None for r in rows} == {True}


def test_a_scores_table_from_before_reasons_takes_them_and_its_old_rows_stay_readable(
    spark: SparkSession, tmp_path
) -> None:
    from datetime import date

    from deltalake import DeltaTable

    from lakeml.core import storage

    path = str(tmp_path / "scores")
    probabilities = "id string, snapshot_date date, churn_probability double"
    old_rows = [("a", date(2024, 1, 1), 0.9), ("b", date(2024, 1, 1), 0.1)]
    old = scorer.score_table(
        spark.createDataFrame(old_rows, probabilities), "id", 0.5, 10, "m", 1, "r"
    ).drop(reasons.REASONS)
    storage.replace_where(old, path, "snapshot_date = DATE'2024-01-01'", ["snapshot_date"])

    reason = [("tenure", "2.0", 0.7)]
    new_rows = spark.createDataFrame(
        [("a", date(2024, 1, 8), 0.8, reason)],
        f"{probabilities}, reasons array<struct<feature:string,value:string,contribution:double>>",
    )
    new = scorer.score_table(new_rows, "id", 0.5, 10, "m", 1, "r")
    assert scorer.check_output_schema(spark, path, new) is True  # the table lacks reasons
    condition = scorer.key_condition(date(2024, 1, 8), "m", 1)
    storage.replace_where(new, path, condition, ["snapshot_date"], add_columns=True)

    table = DeltaTable(path).to_pandas().sort_values(["snapshot_date", "id"])
    assert "reasons" in table.columns
    got = [(r.id, str(r.snapshot_date)[:10], r.reasons) for r in table.itertuples()]
    assert got[0][:2] == ("a", "2024-01-01") and got[0][2] is None
    assert got[1][:2] == ("b", "2024-01-01") and got[1][2] is None
    assert got[2][:2] == ("a", "2024-01-08")
    assert [(e["feature"], e["value"], e["contribution"]) for e in got[2][2]] == reason
