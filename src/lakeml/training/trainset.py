"""The training set: gold features inner-joined with matured labels, split into windows.

Out of time (the default, for event logs): the latest `split.test_snapshots` labelled
snapshots test, the `split.validation_snapshots` before them validate (tuning and the
decision threshold), all earlier ones train. A model is thus always judged on snapshots later
than any it learned from, as in production.

Random (for a customer table with a single snapshot, where there is no "later"): entities are
assigned to test / validation / train by a seeded hash of their id, in the configured
fractions. The same entity is in the same window on every snapshot and every rerun.

By column (for a table that ships its own split, e.g. train and test files): rows whose
split column holds a test value test; the others are divided by the entity hash into
validation and train.

The Delta versions read are recorded, so a run's training set can be rebuilt exactly later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeml.core import storage
from lakeml.core.config import TrainConfig
from lakeml.core.errors import LakemlError
from lakeml.tracking import tags

SPLIT_COL = "_lakeml_split"
WEIGHT_COL = "_lakeml_weight"
TRAIN, VALIDATION, TEST = "train", "validation", "test"
OUT_OF_TIME, RANDOM, COLUMN = "out_of_time", "random", "column"
# Hash buckets for the random split: fractions are honoured to 1e-6.
BUCKETS = 1_000_000
NUMERIC = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType)


@dataclass(frozen=True)
class Split:
    """Snapshot dates of each window, oldest first. A random split has every labelled
    snapshot in each window and divides the entities instead."""

    train: tuple[date, ...]
    validation: tuple[date, ...]
    test: tuple[date, ...]
    method: str = "out_of_time"
    test_fraction: float = 0.0
    validation_fraction: float = 0.0
    seed: int = 0
    column: str = ""  # a COLUMN split: the column and its values that mean test
    test_values: tuple[str, ...] = ()

    def windows(self) -> tuple[tuple[str, tuple[date, ...]], ...]:
        """(window name, its snapshot dates): train, validation, test."""
        return ((TRAIN, self.train), (VALIDATION, self.validation), (TEST, self.test))

    def as_tags(self) -> dict[str, str]:
        out = {
            tags.snapshots_tag(w): ",".join(d.isoformat() for d in ds) for w, ds in self.windows()
        }
        out[tags.SPLIT_METHOD] = self.method
        if self.method in (RANDOM, COLUMN):
            out[tags.SPLIT_FRACTIONS] = (
                f"test={self.test_fraction},validation={self.validation_fraction},seed={self.seed}"
            )
        if self.method == COLUMN:
            out[tags.SPLIT_COLUMN] = self.column
            out[tags.SPLIT_TEST_VALUES] = json.dumps(list(self.test_values))
        return out


@dataclass(frozen=True)
class FeatureSpec:
    """The model's input columns: numeric ones are imputed, categorical ones one-hot encoded."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    schema: T.StructType  # the input columns with their types, in table order

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.schema.fields]


@dataclass(frozen=True)
class Lineage:
    """Which Delta versions of the gold tables a training set was read from."""

    features_path: str
    features_version: int
    labels_path: str
    labels_version: int

    def as_tags(self) -> dict[str, str]:
        return {
            tags.FEATURES_PATH: self.features_path,
            tags.FEATURES_VERSION: str(self.features_version),
            tags.LABELS_PATH: self.labels_path,
            tags.LABELS_VERSION: str(self.labels_version),
        }


@dataclass(frozen=True)
class TrainingSet:
    """Labelled rows of every window (cached) with what the run needs to know about them."""

    df: DataFrame  # keys + features + label + SPLIT_COL
    cached: DataFrame  # what to unpersist when done
    spec: FeatureSpec
    split: Split
    lineage: Lineage
    counts: dict[str, dict[int, int]]  # window -> label -> rows

    def window(self, *names: str) -> DataFrame:
        return self.df.where(F.col(SPLIT_COL).isin(*names))


def feature_spec(schema: T.StructType, train: TrainConfig) -> FeatureSpec:
    """Feature columns = every column except keys, label, `exclude_cols` and a split column,
    type checked."""
    skip = {train.entity_col, train.snapshot_col, train.label_col, *train.exclude_cols}
    if train.split.method == COLUMN:
        skip.add(train.split.column)
    fields = [f for f in schema.fields if f.name not in skip and not f.name.startswith("_lakeml")]
    names = {f.name for f in fields}
    missing = [c for c in train.categorical_cols if c not in names]
    if missing:
        raise LakemlError(
            f"train.categorical_cols lists {', '.join(missing)}, not in the features table; "
            f"feature columns are: {', '.join(sorted(names))}"
        )
    numeric, categorical = [], []
    for f in fields:
        if f.name in train.categorical_cols:
            categorical.append(f.name)
        elif isinstance(f.dataType, NUMERIC):
            numeric.append(f.name)
        elif isinstance(f.dataType, T.StringType):
            raise LakemlError(
                f"feature column {f.name!r} is a string: list it in train.categorical_cols "
                "or leave it out with train.exclude_cols"
            )
        else:
            raise LakemlError(
                f"feature column {f.name!r} has type {f.dataType.simpleString()}, which the "
                "models cannot use; cast it to a number in the features or add it to "
                "train.exclude_cols"
            )
    if not fields:
        raise LakemlError("the features table has no feature columns besides the keys")
    return FeatureSpec(tuple(numeric), tuple(categorical), T.StructType(fields))


def split_snapshots(labelled: list[date], test_n: int, validation_n: int) -> Split:
    """Latest `test_n` snapshots test, the `validation_n` before validate, the rest train
    (both counts are at least 1: the config checks it)."""
    dates = sorted(set(labelled))
    needed = test_n + validation_n + 1
    if not dates:
        raise LakemlError(
            "no labelled snapshots: the labels table has no rows that match a features row; "
            "labels exist only for snapshots whose horizon has passed, so run "
            "`lakeml features` on more days of events"
        )
    if len(dates) < needed:
        raise LakemlError(
            f"too few labelled snapshots for the out-of-time split: there are {len(dates)} "
            f"({', '.join(d.isoformat() for d in dates)}) and {needed} are needed "
            f"({test_n} test + {validation_n} validation + at least 1 train); add events "
            "or lower train.split.test_snapshots / validation_snapshots"
        )
    cut_test = len(dates) - test_n
    cut_val = cut_test - validation_n
    return Split(tuple(dates[:cut_val]), tuple(dates[cut_val:cut_test]), tuple(dates[cut_test:]))


def split_random(
    labelled: list[date], test_fraction: float, validation_fraction: float, seed: int
) -> Split:
    """Every labelled snapshot in each window; `assign_split` divides the entities (the
    config checks that the fractions leave rows in every window)."""
    dates = tuple(sorted(set(labelled)))
    if not dates:
        raise LakemlError(
            "no labelled snapshots: the labels table has no rows that match a features row"
        )
    return Split(dates, dates, dates, RANDOM, test_fraction, validation_fraction, seed)


def split_by_column(
    labelled: list[date], column: str, test_values: list[str], validation_fraction: float, seed: int
) -> Split:
    """Every labelled snapshot in each window; test rows are those whose `column` holds one
    of `test_values`, the others are divided by entity hash (`assign_split`)."""
    dates = split_random(labelled, 0.0, validation_fraction, seed).train
    return Split(
        dates, dates, dates, COLUMN, 0.0, validation_fraction, seed, column, tuple(test_values)
    )


def split_for(labelled: list[date], t: TrainConfig) -> Split:
    """The configured split of the labelled snapshots."""
    s = t.split
    if s.method == RANDOM:
        return split_random(labelled, s.test_fraction, s.validation_fraction, t.seed)
    if s.method == COLUMN:
        return split_by_column(labelled, s.column, s.test_values, s.validation_fraction, t.seed)
    return split_snapshots(labelled, s.test_snapshots, s.validation_snapshots)


def entity_bucket(entity_col: str, seed: int) -> Column:
    """A stable pseudo-random number in [0, 1) per entity id (xxhash64 with the seed)."""
    hashed = F.xxhash64(F.col(entity_col).cast("string"), F.lit(seed))
    return F.pmod(hashed, F.lit(BUCKETS)) / F.lit(float(BUCKETS))


def class_weights(counts: dict[int, int], policy: str) -> dict[int, float]:
    """Per-class row weights: balanced = n / (2 * n_class), so both classes weigh n/2."""
    if policy == "none":
        return {0: 1.0, 1: 1.0}
    n = sum(counts.values())
    return {c: n / (2 * counts[c]) for c in (0, 1)}


def join_labels(features: DataFrame, labels: DataFrame, train: TrainConfig) -> DataFrame:
    """Feature rows that have a (matured) label; inner join on entity and snapshot."""
    keys = [train.entity_col, train.snapshot_col]
    labelled = labels.select(*keys, F.col(train.label_col).cast("int").alias(train.label_col))
    return features.join(labelled, on=keys, how="inner").where(F.col(train.label_col).isNotNull())


def assign_split(
    df: DataFrame, split: Split, snapshot_col: str, entity_col: str | None = None
) -> DataFrame:
    """Add SPLIT_COL (train | validation | test): from the snapshot date out of time, from
    the entity's hash bucket for a random split."""
    if split.method in (RANDOM, COLUMN):
        if entity_col is None:
            raise ValueError(f"a {split.method} split needs the entity column")
        u = entity_bucket(entity_col, split.seed)
        window = (
            F.when(u < F.lit(split.test_fraction), F.lit(TEST))
            .when(u < F.lit(split.test_fraction + split.validation_fraction), F.lit(VALIDATION))
            .otherwise(F.lit(TRAIN))
        )
        if split.method == COLUMN:
            is_test = F.col(split.column).cast("string").isin(*split.test_values)
            window = F.when(is_test, F.lit(TEST)).otherwise(
                F.when(u < F.lit(split.validation_fraction), F.lit(VALIDATION)).otherwise(
                    F.lit(TRAIN)
                )
            )
    else:
        snap = F.col(snapshot_col)
        window = (
            F.when(snap.isin(*split.test), F.lit(TEST))
            .when(snap.isin(*split.validation), F.lit(VALIDATION))
            .when(snap.isin(*split.train), F.lit(TRAIN))
        )
    return df.select(*df.columns, window.alias(SPLIT_COL))


def with_weights(df: DataFrame, weights: dict[int, float], label_col: str) -> DataFrame:
    """Add WEIGHT_COL: the class weight of each row's label."""
    weight = F.when(F.col(label_col) == 1, F.lit(weights[1])).otherwise(F.lit(weights[0]))
    return df.select(*[c for c in df.columns if c != WEIGHT_COL], weight.alias(WEIGHT_COL))


def _check_columns(df: DataFrame, path: str, needed: list[str], what: str) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise LakemlError(
            f"the {what} table at {path} lacks column(s) {', '.join(missing)}; check "
            "train.entity_col / snapshot_col / label_col / split.column or rebuild it with "
            "`lakeml features`"
        )


def snapshot_stats(df: DataFrame, train: TrainConfig) -> list[dict]:
    """Per snapshot: rows, distinct entities, churners and the label range (one small job)."""
    label = F.col(train.label_col)
    return [
        r.asDict()
        for r in df.groupBy(train.snapshot_col)
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.countDistinct(train.entity_col).alias("entities"),
            F.sum(label).alias("churned"),
            F.min(label).alias("min_label"),
            F.max(label).alias("max_label"),
        )
        .collect()
    ]


def check_stats(stats: list[dict], train: TrainConfig) -> None:
    """One row per entity and snapshot, labels 0/1: else a join would mislead training."""
    for s in sorted(stats, key=lambda r: r[train.snapshot_col]):
        if s["rows"] != s["entities"]:
            raise LakemlError(
                f"snapshot {s[train.snapshot_col]} has {s['rows']} labelled feature rows for "
                f"{s['entities']} distinct {train.entity_col} values; the features and labels "
                "tables must each have one row per entity and snapshot"
            )
        if s["min_label"] < 0 or s["max_label"] > 1:
            raise LakemlError(
                f"label column {train.label_col!r} holds values outside 0/1 (snapshot "
                f"{s[train.snapshot_col]}: {s['min_label']}..{s['max_label']}); labels "
                "must be 0 or 1"
            )


def missing_table_error(what: str, path: str) -> LakemlError:
    """The error for a gold table that is not there."""
    return LakemlError(
        f"no {what} table at {path}; run `lakeml features` first (or check storage.root)"
    )


def one_class_error(window: str, dates: tuple[date, ...], churned: bool, rows: int) -> LakemlError:
    """The error for a split window whose labelled rows are all one class."""
    only = "churned" if churned else "non-churned"
    return LakemlError(
        f"the {window} window ({', '.join(d.isoformat() for d in dates)}) has only "
        f"{only} rows ({rows}); a churn model needs both classes in every "
        "window: add snapshots (more days of events) or entities, change "
        "train.split, or check the labels"
    )


def window_counts(df: DataFrame, label_col: str) -> dict[str, dict[int, int]]:
    """Rows per window and label of a split training set (one small job on cached rows)."""
    counts: dict[str, dict[int, int]] = {w: {0: 0, 1: 0} for w in (TRAIN, VALIDATION, TEST)}
    for r in df.groupBy(SPLIT_COL, label_col).count().collect():
        if r[SPLIT_COL] is not None:
            counts[r[SPLIT_COL]][int(r[label_col])] = int(r["count"])
    return counts


def load_training_set(
    spark: SparkSession,
    t: TrainConfig,
    f_path: str,
    l_path: str,
    features_version: int | None = None,
    labels_version: int | None = None,
) -> TrainingSet:
    """Read the gold features and labels tables (current or given Delta versions), join,
    split; cache the rows."""
    for path, what in ((f_path, "features"), (l_path, "labels")):
        if not storage.exists(spark, path):
            raise missing_table_error(what, path)
    # Pin the versions first and read exactly them, so the recorded lineage is what was read.
    f_version = features_version if features_version is not None else storage.version(spark, f_path)
    l_version = labels_version if labels_version is not None else storage.version(spark, l_path)
    features = storage.read(spark, f_path, version=f_version)
    labels = storage.read(spark, l_path, version=l_version)
    keys = [t.entity_col, t.snapshot_col]
    split_col = [t.split.column] if t.split.method == COLUMN else []
    _check_columns(features, f_path, [*keys, *split_col], "features")
    _check_columns(labels, l_path, [*keys, t.label_col], "labels")
    spec = feature_spec(features.schema, t)

    # The joined rows are cached: the stats job below fills the cache that every later
    # fit, transform and collect reads (they are entity-level, so they fit in memory).
    # Iterative fits run a job per iteration, so one partition per core is plenty. Rows go
    # to partitions by their keys and are sorted in each: tree learners sample per
    # partition, so the same rows in another file order must train the same model.
    joined = (
        join_labels(features, labels, t)
        .select(*keys, *split_col, *spec.columns, t.label_col)
        .repartition(max(1, spark.sparkContext.defaultParallelism), *keys)
        .sortWithinPartitions(*keys)
        .persist()
    )
    stats = snapshot_stats(joined, t)
    try:
        check_stats(stats, t)
        split = split_for([s[t.snapshot_col] for s in stats], t)
    except LakemlError:
        joined.unpersist()
        raise
    df = assign_split(joined, split, t.snapshot_col, t.entity_col)
    counts = window_counts(df, t.label_col)
    for window, dates in split.windows():
        c = counts[window]
        if min(c.values()) == 0:
            joined.unpersist()
            raise one_class_error(window, dates, bool(c[1]), c[0] + c[1])
    lineage = Lineage(f_path, int(f_version), l_path, int(l_version))
    return TrainingSet(df, joined, spec, split, lineage, counts)
