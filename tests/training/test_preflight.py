"""Training's checks answered from the Delta logs before Spark starts: each raises what
training on Spark raises for the same tables (the same message where the logs know the
window's rows), and stays silent when the logs cannot tell."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from lakeml.core.config import load_config
from lakeml.core.errors import LakemlError
from lakeml.training.preflight import check_tables, label_classes
from lakeml.training.trainset import load_training_set

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf" / "local.yaml"
D = [date(2018, 10, 1 + 7 * i) for i in range(4)]  # Oct 1, 8, 15, 22
FEATURES = "user_id string, snapshot_date date, songs_7d long, gender string"
LABELS = "user_id string, snapshot_date date, churned int"


def write_gold(spark, cfg, features, labels, partitioned=True):
    """The gold tables as `lakeml features` writes them: partitioned by snapshot_date."""
    for rows, schema, name in ((features, FEATURES, "features"), (labels, LABELS, "labels")):
        writer = spark.createDataFrame(rows, schema).write.format("delta").mode("overwrite")
        writer = writer.option("overwriteSchema", "true")
        if partitioned:
            writer = writer.partitionBy("snapshot_date")
        writer.save(cfg.table(name))


def cfg_at(tmp_path):
    return load_config(CONF, [f"storage.root={tmp_path}", "train.categorical_cols=[gender]"])


def spark_error(spark, cfg) -> str:
    with pytest.raises(LakemlError) as raised:
        load_training_set(spark, cfg.train, cfg.table("features"), cfg.table("labels"))
    return str(raised.value)


def preflight_error(cfg) -> str:
    with pytest.raises(LakemlError) as raised:
        check_tables(cfg.train, cfg.table("features"), cfg.table("labels"))
    return str(raised.value)


def test_too_few_labelled_snapshots_is_the_error_training_gives(spark, tmp_path):
    cfg = cfg_at(tmp_path)
    features = [(u, d, 1, "F") for d in D for u in ("a", "b")]
    labels = [(u, d, int(u == "a")) for d in D[:2] for u in ("a", "b")]
    write_gold(spark, cfg, features, labels)
    message = preflight_error(cfg)
    assert "there are 2 (2018-10-01, 2018-10-08) and 3 are needed" in message
    assert message == spark_error(spark, cfg)


def test_a_fresh_root_with_no_matured_snapshot_asks_for_more_days_not_a_first_run(spark, tmp_path):
    # `lakeml features` ran on fewer days than the label horizon: the labels table exists
    # and is empty. Saying "run `lakeml features` first" right after it ran misleads.
    cfg = cfg_at(tmp_path)
    write_gold(spark, cfg, [(u, D[0], 1, "F") for u in ("a", "b")], [])
    message = preflight_error(cfg)
    assert message.startswith("no labelled snapshots:")
    assert "on more days of events" in message and "first" not in message
    assert message == spark_error(spark, cfg)


def test_one_class_window_is_the_error_training_gives(spark, tmp_path):
    cfg = cfg_at(tmp_path)
    features = [(u, d, 1, "F") for d in D for u in ("a", "b", "c")]
    # Nobody churns before D2: the train window (D0, D1) holds 6 non-churned rows only.
    labels = [(u, d, int(d >= D[2] and u == "a")) for d in D for u in ("a", "b", "c")]
    write_gold(spark, cfg, features, labels)
    message = preflight_error(cfg)
    assert "the train window (2018-10-01, 2018-10-08) has only non-churned rows (6)" in message
    assert message == spark_error(spark, cfg)


def test_a_one_class_labels_table_fails_a_random_split_before_spark(spark, tmp_path):
    # A customer table (one snapshot, a random split) whose label column says nobody churned.
    overrides = [f"storage.root={tmp_path}", "train.categorical_cols=[gender]"]
    cfg = load_config(CONF, [*overrides, "train.split.method=random"])
    users = [f"u{i}" for i in range(10)]
    write_gold(spark, cfg, [(u, D[0], 1, "F") for u in users], [(u, D[0], 0) for u in users])
    message = preflight_error(cfg)
    assert message.startswith(
        "every labelled row of the labels table is non-churned (10 rows; snapshots 2018-10-01)"
    )
    # Spark, splitting the entities, fails on its first window for the same reason.
    assert "the train window (2018-10-01) has only non-churned rows" in spark_error(spark, cfg)
    # One churner: the logs cannot tell how the entities split, so Spark decides.
    write_gold(
        spark, cfg, [(u, D[0], 1, "F") for u in users], [(u, D[0], int(u == "u0")) for u in users]
    )
    check_tables(cfg.train, cfg.table("features"), cfg.table("labels"))


def test_per_snapshot_classes_from_the_log_match_the_rows(spark, tmp_path):
    cfg = cfg_at(tmp_path)
    labels = [("a", D[0], 1), ("b", D[0], 1), ("a", D[1], 0), ("b", D[1], 1), ("c", D[1], 0)]
    write_gold(spark, cfg, [("a", D[0], 1, "F")], labels)
    assert label_classes(cfg.train, cfg.table("labels")) == {D[0]: ({1}, 2), D[1]: ({0, 1}, 3)}


def test_trainable_tables_pass(spark, tmp_path):
    cfg = cfg_at(tmp_path)
    features = [(u, d, 1, "F") for d in D for u in ("a", "b")]
    labels = [(u, d, int(u == "a")) for d in D for u in ("a", "b")]
    write_gold(spark, cfg, features, labels)
    check_tables(cfg.train, cfg.table("features"), cfg.table("labels"))


def test_what_the_log_cannot_tell_is_left_to_spark(spark, tmp_path):
    cfg = cfg_at(tmp_path)
    one_class = [(u, d, 0) for d in D for u in ("a", "b")]
    # Not partitioned by snapshot: the log has no per-snapshot statistics.
    write_gold(spark, cfg, [("a", d, 1, "F") for d in D], one_class, partitioned=False)
    check_tables(cfg.train, cfg.table("features"), cfg.table("labels"))
    # The features table lacks a labelled snapshot: training's windows would differ.
    write_gold(spark, cfg, [("a", d, 1, "F") for d in D[1:]], one_class)
    check_tables(cfg.train, cfg.table("features"), cfg.table("labels"))
    assert "has only non-churned rows" in spark_error(spark, cfg)
    # A table on a remote store: its credentials are Spark's, the log is not read.
    assert label_classes(cfg.train, "s3a://bucket/gold/churn_labels") is None


def test_missing_tables_fail_before_spark(tmp_path):
    cfg = cfg_at(tmp_path)
    assert "no features table at" in preflight_error(cfg)


def test_lakeml_train_fails_in_a_real_process_without_starting_spark(spark, tmp_path):
    cfg = cfg_at(tmp_path)
    features = [(u, d, 1, "F") for d in D for u in ("a", "b")]
    write_gold(spark, cfg, features, [(u, D[0], int(u == "a")) for u in ("a", "b")])
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "lakeml.cli", "train", "--set", f"storage.root={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert time.monotonic() - started < 5, "the logs answer this without a JVM"
    assert "incubator" not in proc.stderr  # the JVM's first words: no JVM was started
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "lakeml train: error: too few labelled snapshots for the out-of-time split: there are "
        "1 (2018-10-01) and 3 are needed (1 test + 1 validation + at least 1 train); add "
        "events or lower train.split.test_snapshots / validation_snapshots"
    ]
