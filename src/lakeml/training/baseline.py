"""The scikit-learn baseline: the notebook proof of concept, made honest.

Same training window, same out-of-time protocol (threshold on validation, refit on
train + validation, judged on the test window) and the same metric code as the Spark
models, on a pandas sample of at most `baseline.sample_rows` rows. If the Spark models
do not beat it, the scale-out is not buying accuracy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from lakeml.training.trainset import FeatureSpec


def build_baseline(spec: FeatureSpec, seed: int, class_weight: str = "balanced") -> Pipeline:
    """Impute + scale numerics, impute + one-hot categoricals, logistic regression weighted
    like the Spark models (`train.class_weight`: balanced or none)."""
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    columns = ColumnTransformer(
        [
            ("numeric", numeric, list(spec.numeric)),
            ("categorical", categorical, list(spec.categorical)),
        ]
    )
    weights = "balanced" if class_weight == "balanced" else None
    model = LogisticRegression(class_weight=weights, max_iter=2000, random_state=seed)
    return Pipeline([("columns", columns), ("model", model)])


def sample_frame(df: DataFrame, count: int, max_rows: int, seed: int) -> pd.DataFrame:
    """At most `max_rows` rows of `df` (which has `count` rows) as pandas, sampled at random."""
    if count > max_rows:
        df = df.sample(fraction=min(1.0, 1.1 * max_rows / count), seed=seed).limit(max_rows)
    return df.toPandas()


def fit_baseline(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    label_col: str,
    seed: int,
    class_weight: str = "balanced",
) -> Pipeline:
    model = build_baseline(spec, seed, class_weight)
    return model.fit(frame[spec.columns], frame[label_col].astype(int))


def churn_probability(model: Pipeline, frame: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    """P(churn) per row: the last column of predict_proba."""
    return model.predict_proba(frame[spec.columns])[:, -1]
