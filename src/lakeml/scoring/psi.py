"""The population stability index (PSI) of features and of scores: the binning and the sums.

Numbers fall into quantile bins of the training side, strings into one bin per category, and
an empty bin counts as `EPSILON`. Pure: DataFrames and numbers in, DataFrames and numbers out;
`drift` reads the training window and writes the results.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame, Row, Window
from pyspark.sql import functions as F

# Share given to a bin one side has no values in, so the log stays finite.
EPSILON = 1e-4
NUMERIC_TYPES = ("long", "integer", "double", "float")
# percentile_approx accuracy: 1/accuracy is the relative rank error of the bin edges.
QUANTILE_ACCURACY = 1000
ROWS = "__rows"


def numeric_value(name: str) -> Column:
    """A numeric column as double, NaN counted as missing like null."""
    return F.nanvl(F.col(name).cast("double"), F.lit(None).cast("double"))


def quantile_edges(df: DataFrame, columns: list[str], bins: int) -> DataFrame:
    """One row: the row count (`ROWS`) and, for each column, the inner edges of `bins`
    equal-frequency bins."""
    ranks = [i / bins for i in range(1, bins)]
    return df.agg(
        F.count(F.lit(1)).alias(ROWS),
        *[
            F.percentile_approx(numeric_value(c), ranks, QUANTILE_ACCURACY).alias(c)
            for c in columns
        ],
    )


def edges_from_row(row: Row | None, columns: list[str]) -> dict[str, list[float]]:
    """Distinct, sorted edges per column (ties in the data collapse bins)."""
    if row is None:
        return {c: [] for c in columns}
    return {c: sorted({float(x) for x in (row[c] or []) if x is not None}) for c in columns}


def bin_index(name: str, cuts: list[float]) -> Column:
    """A number's bin: how many edges lie below it, so bins are (-inf, e1], (e1, e2], ...
    (ek, inf); null for a missing value.

    One `filter` over the edge array rather than a comparison per edge: with ~75 features of
    ten edges each, per-edge comparisons outgrow the JVM's 64 KB method limit in codegen.
    """
    value = numeric_value(name)
    edges = F.array(*[F.lit(float(c)) for c in cuts]).cast("array<double>")
    return F.when(value.isNotNull(), F.size(F.filter(edges, lambda e: e < value)))


def binned(df: DataFrame, edges: dict[str, list[float]], categorical: list[str]) -> DataFrame:
    """One (feature, bin) row per input value and feature; bin is null for a missing value.

    A number's bin is its `bin_index` as three digits, a string's bin the category itself.
    The bins are computed in one projection first, so the explode only copies short labels.
    """
    labels = [
        F.lpad(bin_index(name, cuts).cast("string"), 3, "0").alias(name)
        for name, cuts in edges.items()
    ] + [F.col(name).cast("string").alias(name) for name in categorical]
    entries = [
        F.struct(F.lit(name).alias("feature"), F.col(name).alias("bin"))
        for name in [*edges, *categorical]
    ]
    return (
        df.select(*labels)
        .select(F.explode(F.array(*entries)).alias("e"))
        .select(F.col("e.feature").alias("feature"), F.col("e.bin").alias("bin"))
    )


def bin_counts(df: DataFrame, edges: dict[str, list[float]], categorical: list[str]) -> DataFrame:
    """Rows per (feature, bin) that has any: quantile bins for numbers, categories for
    strings, missing values under a null bin. An empty bin has no row (PSI treats it as 0)."""
    if not edges and not categorical:
        raise ValueError("bin_counts needs at least one feature")
    return (
        binned(df, edges, categorical).groupBy("feature", "bin").agg(F.count(F.lit(1)).alias("n"))
    )


def _shares(counts: DataFrame, side: str) -> tuple[DataFrame, DataFrame]:
    """Share of each bin among a feature's non-null values, and the feature's null rate."""
    per_feature = Window.partitionBy("feature")
    shares = counts.filter(F.col("bin").isNotNull()).select(
        F.col("feature"),
        F.col("bin"),
        (F.col("n") / F.sum("n").over(per_feature)).alias(f"share_{side}"),
    )
    missing = F.when(F.col("bin").isNull(), F.col("n")).otherwise(F.lit(0))
    null_rates = counts.groupBy("feature").agg(
        (F.sum(missing) / F.sum("n")).cast("double").alias(f"null_rate_{side}")
    )
    return shares, null_rates


def psi_table(
    train_counts: DataFrame, scored_counts: DataFrame, epsilon: float = EPSILON
) -> DataFrame:
    """PSI and null rates per feature from the two sides' bin counts.

    PSI is null when either side has no non-null values (it compares non-null values only; the
    null rates say what happened).
    """
    train_shares, train_nulls = _shares(train_counts, "train")
    scored_shares, scored_nulls = _shares(scored_counts, "scored")
    expected = F.greatest(F.coalesce(F.col("share_train"), F.lit(0.0)), F.lit(epsilon))
    actual = F.greatest(F.coalesce(F.col("share_scored"), F.lit(0.0)), F.lit(epsilon))
    psi = (
        train_shares.join(scored_shares, on=["feature", "bin"], how="full_outer")
        .groupBy("feature")
        .agg(F.sum((actual - expected) * F.log(actual / expected)).alias("psi"))
    )
    all_missing = (F.col("null_rate_train") >= 1.0) | (F.col("null_rate_scored") >= 1.0)
    return (
        train_nulls.join(scored_nulls, on="feature", how="full_outer")
        .join(psi, on="feature", how="left")
        .select(
            F.col("feature"),
            F.when(all_missing, F.lit(None)).otherwise(F.col("psi")).cast("double").alias("psi"),
            F.coalesce(F.col("null_rate_train"), F.lit(1.0)).alias("null_rate_train"),
            F.coalesce(F.col("null_rate_scored"), F.lit(1.0)).alias("null_rate_scored"),
        )
    )


def split_features(features: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """(numeric, categorical) names from (name, signature type) pairs."""
    numeric = [name for name, kind in features if kind in NUMERIC_TYPES]
    return numeric, [name for name, _ in features if name not in numeric]


def compute_drift(
    train: DataFrame,
    scored: DataFrame,
    features: list[tuple[str, str]],
    bins: int,
    profile: Row | None = None,
) -> DataFrame:
    """PSI and null rates of `features` ((name, signature type) pairs), scored vs training.

    `profile` is the training side's `quantile_edges` row when the caller already has it.
    """
    numeric, categorical = split_features(features)
    if profile is None:
        # A few numbers per feature: collecting them keeps the binning a column expression.
        profile = quantile_edges(train, numeric, bins).first()
    edges = edges_from_row(profile, numeric)
    # A few rows per feature, each read twice by psi_table: computed once, kept on the executors.
    train_counts = bin_counts(train, edges, categorical).localCheckpoint()
    scored_counts = bin_counts(scored, edges, categorical).localCheckpoint()
    return psi_table(train_counts, scored_counts)


def psi_from_shares(expected: list[float], actual: list[float], epsilon: float = EPSILON) -> float:
    """PSI of two share vectors over the same bins (an empty bin counts as `epsilon`)."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, epsilon), max(a, epsilon)
        total += (a - e) * math.log(a / e)
    return total


SCORE_BINS = 10
TIE_MARGIN = 1e-6


def score_distribution(p: Any, bins: int = SCORE_BINS) -> str:
    """The test window's scores as the score-PSI reference: inner edges of `bins` equal-
    frequency bins and each bin's share, a bin holding the values above its lower edge up to
    its upper edge (as `bin_index` counts them)."""
    values = np.asarray(p, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return ""
    # Nudged up by TIE_MARGIN: a tie at an edge (many equal scores) stays in one bin when
    # another scorer computes it a float32 rounding away (Spark vs the native booster).
    quantiles = np.quantile(values, [i / bins for i in range(1, bins)])
    edges = sorted({float(e) + TIE_MARGIN for e in quantiles})
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    shares = [round(float(c) / len(values), 6) for c in counts]
    return json.dumps(
        {"edges": [round(e, 8) for e in edges], "shares": shares, "rows": len(values)}
    )


def score_psi(scores: DataFrame, reference: str, column: str) -> float | None:
    """PSI of the scored probabilities against the model's test-window scores (the
    `score_reference` tag), binned by the reference's edges; None without scores."""
    ref = json.loads(reference)
    counts = {
        r[0]: r[1]
        for r in scores.select(bin_index(column, ref["edges"]).alias("bin"))
        .filter(F.col("bin").isNotNull())
        .groupBy("bin")
        .count()
        .collect()
    }
    total = sum(counts.values())
    if total == 0:
        return None
    actual = [counts.get(i, 0) / total for i in range(len(ref["shares"]))]
    return psi_from_shares(ref["shares"], actual)
