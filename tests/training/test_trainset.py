from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeml.core.config import TrainConfig, load_config
from lakeml.core.errors import LakemlError
from lakeml.scoring import drift as monitor
from lakeml.training.trainset import (
    SPLIT_COL,
    WEIGHT_COL,
    Split,
    assign_split,
    class_weights,
    feature_spec,
    join_labels,
    load_training_set,
    split_snapshots,
    with_weights,
)

CONF = Path(__file__).resolve().parents[2] / "conf" / "local.yaml"
D = [date(2018, 10, 1 + 7 * i) for i in range(4)]  # Oct 1, 8, 15, 22
TRAIN_CFG = TrainConfig(categorical_cols=["gender"])

FEATURES = T.StructType(
    [
        T.StructField("user_id", T.StringType()),
        T.StructField("snapshot_date", T.DateType()),
        T.StructField("songs_7d", T.LongType()),
        T.StructField("gender", T.StringType()),
    ]
)
LABELS = T.StructType(
    [
        T.StructField("user_id", T.StringType()),
        T.StructField("snapshot_date", T.DateType()),
        T.StructField("churned", T.IntegerType()),
    ]
)


def test_out_of_time_split_puts_the_latest_snapshots_in_test():
    # 6 snapshots, 1 test, 2 validation: train = the 3 oldest
    dates = [date(2018, 10, d) for d in (1, 8, 15, 22, 29)] + [date(2018, 11, 5)]
    got = split_snapshots(list(reversed(dates)), test_n=1, validation_n=2)
    assert got == Split(
        train=(date(2018, 10, 1), date(2018, 10, 8), date(2018, 10, 15)),
        validation=(date(2018, 10, 22), date(2018, 10, 29)),
        test=(date(2018, 11, 5),),
    )
    assert got.as_tags()["validation_snapshots"] == "2018-10-22,2018-10-29"


def test_too_few_snapshots_says_how_many_there_are_and_are_needed():
    with pytest.raises(LakemlError, match="there are 2 .* and 3 are needed"):
        split_snapshots(D[:2], test_n=1, validation_n=1)


def test_no_labelled_snapshots_is_a_clear_error():
    with pytest.raises(LakemlError, match="no labelled snapshots"):
        split_snapshots([], test_n=1, validation_n=1)


def test_balanced_weights_by_hand():
    # n = 8 rows, 6 non-churned and 2 churned:
    # w0 = 8 / (2 * 6) = 2/3, w1 = 8 / (2 * 2) = 2; each class then weighs 4 = n/2
    assert class_weights({0: 6, 1: 2}, "balanced") == pytest.approx({0: 2 / 3, 1: 2.0})
    assert class_weights({0: 6, 1: 2}, "none") == {0: 1.0, 1: 1.0}


def test_weight_column_holds_each_rows_class_weight(spark):
    schema = T.StructType([T.StructField("churned", T.IntegerType())])
    df = spark.createDataFrame([(1,), (0,), (0,)], schema)
    expected = spark.createDataFrame(
        [(1, 2.0), (0, 0.5), (0, 0.5)],
        T.StructType([*schema.fields, T.StructField(WEIGHT_COL, T.DoubleType(), False)]),
    )
    assert_df_equality(with_weights(df, {0: 0.5, 1: 2.0}, "churned"), expected)


def test_split_column_follows_the_snapshot_date(spark):
    split = Split(train=(D[0], D[1]), validation=(D[2],), test=(D[3],))
    schema = T.StructType([T.StructField("snapshot_date", T.DateType())])
    df = spark.createDataFrame([(d,) for d in D], schema)
    expected = spark.createDataFrame(
        [(D[0], "train"), (D[1], "train"), (D[2], "validation"), (D[3], "test")],
        T.StructType([*schema.fields, T.StructField(SPLIT_COL, T.StringType())]),
    )
    assert_df_equality(assign_split(df, split, "snapshot_date"), expected)


def test_only_feature_rows_with_a_label_are_kept(spark):
    features = spark.createDataFrame(
        [("a", D[0], 1, "M"), ("b", D[0], 2, "F"), ("a", D[1], 3, "M")], FEATURES
    )
    # b@D0 has no label yet; c@D0 has a label but no features; a@D1 label is null
    labels = spark.createDataFrame([("a", D[0], 1), ("c", D[0], 0), ("a", D[1], None)], LABELS)
    expected = spark.createDataFrame(
        [("a", D[0], 1, "M", 1)],
        T.StructType([*FEATURES.fields, T.StructField("churned", T.IntegerType())]),
    )
    assert_df_equality(join_labels(features, labels, TRAIN_CFG), expected, ignore_nullable=True)


def test_feature_columns_are_all_but_keys_label_and_excluded():
    schema = T.StructType(
        [
            *FEATURES.fields,
            T.StructField("churned", T.IntegerType()),
            T.StructField("x", T.DoubleType()),
        ]
    )
    spec = feature_spec(schema, TrainConfig(categorical_cols=["gender"], exclude_cols=["x"]))
    assert (spec.numeric, spec.categorical) == (("songs_7d",), ("gender",))
    assert spec.columns == ["songs_7d", "gender"]


@pytest.mark.parametrize(
    ("field", "categorical", "message"),
    [
        (T.StructField("plan", T.StringType()), [], "'plan' is a string"),
        (T.StructField("seen", T.DateType()), [], "'seen' has type date"),
        (T.StructField("x", T.LongType()), ["platform"], "lists platform, not in the features"),
    ],
)
def test_unusable_feature_columns_are_clear_errors(field, categorical, message):
    schema = T.StructType([*FEATURES.fields[:3], field])
    with pytest.raises(LakemlError, match=message):
        feature_spec(schema, TrainConfig(categorical_cols=categorical))


def write_tables(spark, cfg, features, labels):
    spark.createDataFrame(features, FEATURES).write.format("delta").mode("overwrite").save(
        cfg.table("features")
    )
    spark.createDataFrame(labels, LABELS).write.format("delta").mode("overwrite").save(
        cfg.table("labels")
    )


def small_cfg(tmp_path):
    return load_config(CONF, [f"storage.root={tmp_path}", "train.categorical_cols=[gender]"])


def test_training_set_rows_counts_and_lineage(spark, tmp_path):
    cfg = small_cfg(tmp_path)
    users = ["a", "b", "c"]
    features = [(u, d, i * 10 + j, "M") for j, d in enumerate(D) for i, u in enumerate(users)]
    # churners: a at every snapshot, b at D1 and D3 only
    churn = {("a", d): 1 for d in D} | {("b", D[1]): 1, ("b", D[3]): 1}
    labels = [(u, d, churn.get((u, d), 0)) for d in D for u in users]
    write_tables(spark, cfg, features, labels)
    ts = load_training_set(spark, cfg.train, cfg.table("features"), cfg.table("labels"))
    assert ts.split == Split(train=(D[0], D[1]), validation=(D[2],), test=(D[3],))
    # train D0 (a) + D1 (a, b): 3 churned of 6; validation D2: 1 of 3; test D3: 2 of 3
    assert ts.counts == {
        "train": {0: 3, 1: 3},
        "validation": {0: 2, 1: 1},
        "test": {0: 1, 1: 2},
    }
    assert (ts.lineage.features_version, ts.lineage.labels_version) == (0, 0)
    assert ts.window("test").count() == 3
    ts.cached.unpersist()


def test_models_see_the_same_rows_in_the_same_partitions_whatever_the_files_order(spark, tmp_path):
    # A random forest samples its bootstrap per partition, so a table whose files hold the
    # same rows in another order (rewritten, compacted, reloaded) must reach the learners in
    # the same partitions and order, or the same data trains another model.
    users = [f"u{i:02d}" for i in range(30)]
    features = [(u, d, i, "FM"[i % 2]) for d in D for i, u in enumerate(users)]
    labels = [(u, d, int(i % 3 == 0)) for d in D for i, u in enumerate(users)]
    seen = []
    for name, step in (("forward", 1), ("reversed", -1)):
        cfg = small_cfg(tmp_path / name)
        write_tables(spark, cfg, features[::step], labels[::step])
        ts = load_training_set(spark, cfg.train, cfg.table("features"), cfg.table("labels"))
        partition = F.spark_partition_id().alias("partition")
        rows = ts.df.select(partition, "user_id", "snapshot_date").collect()
        seen.append([tuple(r) for r in rows])
        ts.cached.unpersist()
    assert len(seen[0]) == len(features)
    assert seen[0] == seen[1]


def test_missing_tables_are_a_clear_error(spark, tmp_path):
    with pytest.raises(LakemlError, match="no features table at .*run `lakeml features` first"):
        cfg = small_cfg(tmp_path)
        load_training_set(spark, cfg.train, cfg.table("features"), cfg.table("labels"))


def test_labels_for_other_snapshots_mean_no_labelled_snapshots(spark, tmp_path):
    cfg = small_cfg(tmp_path)
    write_tables(spark, cfg, [("a", D[0], 1, "M")], [("a", D[1], 1)])
    with pytest.raises(LakemlError, match="no labelled snapshots"):
        load_training_set(spark, cfg.train, cfg.table("features"), cfg.table("labels"))


def test_one_class_only_in_the_training_window_is_a_clear_error(spark, tmp_path):
    cfg = small_cfg(tmp_path)
    features = [(u, d, 1, "F") for d in D for u in ("a", "b")]
    # nobody churns before D2
    labels = [(u, d, int(d >= D[2] and u == "a")) for d in D for u in ("a", "b")]
    write_tables(spark, cfg, features, labels)
    with pytest.raises(LakemlError, match=r"the train window \(2018-10-01, 2018-10-08\) has only"):
        load_training_set(spark, cfg.train, cfg.table("features"), cfg.table("labels"))


def test_duplicate_rows_per_entity_and_snapshot_are_a_clear_error(spark, tmp_path):
    cfg = small_cfg(tmp_path)
    features = [(u, d, 1, "F") for d in D for u in ("a", "b")] + [("a", D[0], 2, "M")]
    labels = [(u, d, int(u == "a")) for d in D for u in ("a", "b")]
    write_tables(spark, cfg, features, labels)
    with pytest.raises(LakemlError, match="snapshot 2018-10-01 has 3 labelled feature rows for 2"):
        load_training_set(spark, cfg.train, cfg.table("features"), cfg.table("labels"))


def random_cfg(tmp_path, *extra):
    return load_config(
        CONF,
        [
            f"storage.root={tmp_path}",
            "train.categorical_cols=[gender]",
            "train.split.method=random",
            "train.split.test_fraction=0.2",
            "train.split.validation_fraction=0.3",
            *extra,
        ],
    )


def test_random_split_keeps_each_entity_in_one_window_in_the_configured_shares(spark, tmp_path):
    cfg = random_cfg(tmp_path)
    users = [f"c{i:04d}" for i in range(400)]
    # Two snapshots of the same customers; every 4th one churned.
    features = [(u, d, i, "F") for d in D[:2] for i, u in enumerate(users)]
    labels = [(u, d, int(i % 4 == 0)) for d in D[:2] for i, u in enumerate(users)]
    write_tables(spark, cfg, features, labels)
    ts = load_training_set(spark, cfg.train, cfg.table("features"), cfg.table("labels"))
    rows = ts.df.select("user_id", SPLIT_COL).collect()
    ts.cached.unpersist()

    windows: dict[str, set[str]] = {}
    for r in rows:
        windows.setdefault(r["user_id"], set()).add(r[SPLIT_COL])
    # Every customer is in exactly one window, on both snapshots.
    assert len(rows) == 800 and len(windows) == 400
    assert all(len(w) == 1 for w in windows.values())
    share = {w: sum(v == {w} for v in windows.values()) / 400 for w in ("test", "validation")}
    # 400 draws: a share is within 3 standard deviations (at most 0.069) of its fraction.
    assert abs(share["test"] - 0.2) < 0.07 and abs(share["validation"] - 0.3) < 0.07
    assert sum(sum(c.values()) for c in ts.counts.values()) == 800
    assert ts.split.train == ts.split.test == (D[0], D[1])
    assert ts.split.as_tags()["split_method"] == "random"

    # The same seed gives the same windows; another seed gives others.
    again = load_training_set(spark, cfg.train, cfg.table("features"), cfg.table("labels"))
    assert {
        (r["user_id"], r[SPLIT_COL]) for r in again.df.select("user_id", SPLIT_COL).collect()
    } == {(r["user_id"], r[SPLIT_COL]) for r in rows}
    again.cached.unpersist()
    seeded = random_cfg(tmp_path, "train.seed=7")
    other = load_training_set(spark, seeded.train, seeded.table("features"), seeded.table("labels"))
    moved = other.df.join(
        ts.df.select("user_id", "snapshot_date", F.col(SPLIT_COL).alias("before")),
        on=["user_id", "snapshot_date"],
    ).where(F.col(SPLIT_COL) != F.col("before"))
    assert moved.count() > 0
    other.cached.unpersist()


@pytest.mark.parametrize(
    ("test_fraction", "validation_fraction", "key"),
    [(0.0, 0.2, "test_fraction"), (0.2, 1.0, "validation_fraction"), (0.5, 0.5, "fraction")],
)
def test_random_split_fractions_must_leave_rows_in_every_window(
    test_fraction, validation_fraction, key
):
    # Checked when the config loads, before any data is read.
    with pytest.raises(LakemlError, match=rf"train\.split.*{key}"):
        load_config(
            CONF,
            [
                "train.split.method=random",
                f"train.split.test_fraction={test_fraction}",
                f"train.split.validation_fraction={validation_fraction}",
            ],
        )


def test_a_column_split_needs_its_column_and_test_values():
    with pytest.raises(LakemlError, match=r"train\.split.*needs split\.column"):
        load_config(CONF, ["train.split.method=column", "train.split.column=file"])


def test_a_column_split_tests_the_rows_holding_a_test_value(spark):
    # Customer i came from file b.csv when i % 4 == 0, else from a.csv.
    rows = [(f"c{i:03d}", D[0], "b.csv" if i % 4 == 0 else "a.csv") for i in range(200)]
    df = spark.createDataFrame(rows, "user_id string, snapshot_date date, file string")
    split = Split((D[0],), (D[0],), (D[0],), "column", 0.0, 0.25, 7, "file", ("b.csv",))
    windows = {
        r["user_id"]: r[SPLIT_COL]
        for r in assign_split(df, split, "snapshot_date", "user_id").collect()
    }
    assert {u for u, w in windows.items() if w == "test"} == {r[0] for r in rows if r[2] == "b.csv"}
    validation = sum(w == "validation" for w in windows.values())
    # 150 draws at 0.25: within 3 standard deviations (15.9) of 37.5.
    assert abs(validation - 37.5) < 16
    # The file column is never a feature.
    schema = T.StructType([*FEATURES.fields, T.StructField("file", T.StringType())])
    column_split = load_config(
        CONF,
        [
            "train.categorical_cols=[gender]",
            "train.split={method: column, column: file, test_values: [b.csv]}",
        ],
    ).train
    assert feature_spec(schema, column_split).columns == ["songs_7d", "gender"]

    # Drift rebuilds exactly these train rows from the version's tags.
    tags = {**split.as_tags(), "entity_col": "user_id"}
    rebuilt = {r["user_id"] for r in df.where(monitor.hashed_train_rows(tags)).collect()}
    assert rebuilt == {u for u, w in windows.items() if w == "train"}
