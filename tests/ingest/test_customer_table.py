"""Customer snapshot tables handled by configuration (the Telco CSV shape)."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from lakeml.core import storage
from lakeml.core.config import TableSourceConfig, load_config
from lakeml.core.config_load import SPARK_TYPES
from lakeml.core.errors import LakemlError
from lakeml.ingest import customer_table as snapshot_table
from lakeml.training import trainset

CONF = Path(__file__).resolve().parents[2] / "conf" / "local.yaml"
TELCO = TableSourceConfig(
    entity_col="customerID",
    snapshot_date="2024-01-31",
    label_col="Churn",
    types={"tenure": "int", "TotalCharges": "double"},
)
RAW_SCHEMA = T.StructType(
    [
        T.StructField("customerID", T.StringType()),
        T.StructField("tenure", T.StringType()),
        T.StructField("Contract", T.StringType()),
        T.StructField("TotalCharges", T.StringType()),
        T.StructField("Churn", T.StringType()),
    ]
)
RAW = [
    ("A", "1", "Month-to-month", "29.85", "No"),
    ("B", "0", "Two year", " ", "No"),  # blank TotalCharges (tenure 0) is missing, not bad
    ("C", "x", "One year", "10.0", "Yes"),  # tenure not a number
    (" ", "3", "One year", "10.0", "Yes"),  # no customer id
    ("D", "5", "Month-to-month", "99.5", "Yes"),
]


def test_clean_types_values_and_names_the_rule_each_bad_row_failed(spark: SparkSession) -> None:
    raw = spark.createDataFrame(RAW, RAW_SCHEMA)
    got = snapshot_table.clean(raw, TELCO, "snapshot_date").drop("value")
    day = dt.date(2024, 1, 31)
    expected = spark.createDataFrame(
        [
            ("A", 1, "Month-to-month", 29.85, "No", day, None),
            ("B", 0, "Two year", None, "No", day, None),
            ("C", None, "One year", 10.0, "Yes", day, "wrong_type:tenure"),
            (None, 3, "One year", 10.0, "Yes", day, "missing_field:customerID"),
            ("D", 5, "Month-to-month", 99.5, "Yes", day, None),
        ],
        "customerID string, tenure int, Contract string, TotalCharges double, Churn string, "
        "snapshot_date date, rule string",
    )
    assert_df_equality(got, expected, ignore_nullable=True)


def test_a_decimal_type_casts_half_up_and_flags_values_that_do_not_fit(
    spark: SparkSession,
) -> None:
    t = TableSourceConfig(
        entity_col="id",
        snapshot_date="2024-01-31",
        label_col="y",
        types={"amount": "DECIMAL(10, 2)"},  # validated to decimal(10,2)
    )
    raw = spark.createDataFrame(
        [("a", "12.345", "No"), ("b", "123456789.1", "No"), ("c", "x", "Yes"), ("d", " ", "No")],
        "id string, amount string, y string",
    )
    got = snapshot_table.clean(raw, t, "snapshot_date").drop("value")
    day = dt.date(2024, 1, 31)
    expected = spark.createDataFrame(
        [
            ("a", Decimal("12.35"), "No", day, None),  # two places, rounded half up
            ("b", None, "No", day, "wrong_type:amount"),  # 9 digits before the point: > 8
            ("c", None, "Yes", day, "wrong_type:amount"),
            ("d", None, "No", day, None),  # blank: missing, not wrong
        ],
        "id string, amount decimal(10,2), y string, snapshot_date date, rule string",
    )
    assert_df_equality(got, expected, ignore_nullable=True)


def test_every_allowed_type_name_has_its_spark_type() -> None:
    names = [*SPARK_TYPES, "decimal(38,0)", "decimal(10,2)"]
    assert [snapshot_table.spark_type(n).simpleString() for n in names] == names


def test_exact_duplicates_are_marked_and_disagreeing_rows_flagged(spark: SparkSession) -> None:
    day = dt.date(2024, 1, 31)
    checked = spark.createDataFrame(
        [
            ("A", 1, day, None),
            ("A", 1, day, None),  # an exact copy of the row above
            ("A", 1, day, None),  # and another
            ("E", 7, day, None),
            ("E", 8, day, None),  # E twice with different tenure: which is true is unknown
            ("F", 2, day, "wrong_type:tenure"),
            ("F", 2, day, "wrong_type:tenure"),  # rejected rows are never duplicates
            ("G", 3, day, None),
            ("G", None, day, "wrong_type:tenure"),  # a rejected row does not conflict
        ],
        "customerID string, tenure int, snapshot_date date, rule string",
    )
    conflict = "conflicting_rows:customerID"
    expected = spark.createDataFrame(
        [
            ("A", 1, day, None, False),
            ("A", 1, day, None, True),
            ("A", 1, day, None, True),
            ("E", 7, day, conflict, False),
            ("E", 8, day, conflict, False),
            ("F", 2, day, "wrong_type:tenure", False),
            ("F", 2, day, "wrong_type:tenure", False),
            ("G", 3, day, None, False),
            ("G", None, day, "wrong_type:tenure", False),
        ],
        "customerID string, tenure int, snapshot_date date, rule string, duplicate boolean",
    )

    marked = snapshot_table.mark_duplicates(checked)
    judged = snapshot_table.flag_conflicts(marked, "customerID", "snapshot_date")

    assert_df_equality(judged, expected, ignore_row_order=True, ignore_nullable=True)


def test_features_and_labels_by_configuration(spark: SparkSession, tmp_path: Path) -> None:
    csv = tmp_path / "telco.csv"
    lines = ["customerID,tenure,Contract,TotalCharges,Churn"]
    lines += [",".join(row) for row in RAW] + [",".join(RAW[0])]  # plus one exact duplicate
    # and two rows for E that disagree on tenure: neither can be trusted.
    lines += ["E,7,One year,70.0,No", "E,8,One year,70.0,No"]
    csv.write_text("\n".join(lines) + "\n")
    cfg = load_config(
        CONF,
        [
            f"storage.root={tmp_path / 'root'}",
            "source.kind=table",
            f"source.path={csv}",
            "source.table.entity_col=customerID",
            "source.table.label_col=Churn",
            "source.table.snapshot_date=2024-01-31",
            "source.table.types={tenure: int, TotalCharges: double}",
            "train.entity_col=customerID",
        ],
    )
    paths = {name: cfg.table(name) for name in ("silver", "quarantine", "features", "labels")}

    def update() -> snapshot_table.TableResult:
        t = cfg.source.table
        return snapshot_table.update(spark, t, str(csv), "snapshot_date", "churned", paths)

    result = update()
    # 8 input rows = 3 kept (A, B, D) + 4 quarantined (C, blank id, E twice) + 1 duplicate of A.
    assert result == snapshot_table.TableResult(
        input_rows=8,
        silver_rows=3,
        quarantined=4,
        quarantine_by_rule={
            "wrong_type:tenure": 1,
            "missing_field:customerID": 1,
            "conflicting_rows:customerID": 2,
        },
        duplicates_removed=1,
        snapshots=["2024-01-31"],
    )
    assert result.reconciles
    day = dt.date(2024, 1, 31)
    assert_df_equality(
        storage.read(spark, paths["labels"]).select("customerID", "snapshot_date", "churned"),
        spark.createDataFrame(
            [("A", day, 0), ("B", day, 0), ("D", day, 1)],
            "customerID string, snapshot_date date, churned int",
        ),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    features = storage.read(spark, paths["features"])
    assert features.columns == ["customerID", "snapshot_date", "tenure", "Contract", "TotalCharges"]
    assert storage.read(spark, paths["silver"]).count() == 3
    assert storage.read(spark, paths["quarantine"]).count() == 4
    versions = {name: storage.version(spark, path) for name, path in paths.items()}

    assert update() == result  # rerun: same rows, not appended twice

    assert storage.read(spark, paths["features"]).count() == 3
    assert storage.read(spark, paths["quarantine"]).count() == 4
    # One commit per table per run.
    assert {name: storage.version(spark, p) for name, p in paths.items()} == {
        name: v + 1 for name, v in versions.items()
    }


def test_missing_input_is_a_clear_error(spark: SparkSession, tmp_path: Path) -> None:
    paths = {name: str(tmp_path / name) for name in ("silver", "quarantine", "features", "labels")}
    with pytest.raises(LakemlError, match="cannot read a csv table at"):
        snapshot_table.update(spark, TELCO, str(tmp_path / "nope.csv"), "snapshot_date", "y", paths)


def test_missing_configured_column_is_a_clear_error(spark: SparkSession) -> None:
    raw = spark.createDataFrame(RAW, RAW_SCHEMA).drop("Churn")
    with pytest.raises(LakemlError, match="no column\\(s\\) Churn"):
        snapshot_table.clean(raw, TELCO, "snapshot_date")


def test_delta_names_replace_the_characters_delta_cannot_store(spark: SparkSession) -> None:
    raw = spark.createDataFrame([("1", "2")], "`Area code` string, `a,b=c` string")
    assert snapshot_table.with_delta_names(raw).columns == ["Area_code", "a_b_c"]
    named = snapshot_table.named_for_delta(
        TableSourceConfig(entity_col="id", label_col="Churn flag", types={"Area code": "int"})
    )
    assert (named.label_col, named.types) == ("Churn_flag", {"Area_code": "int"})


def test_an_id_made_from_the_row_is_a_hash_of_its_values(spark: SparkSession) -> None:
    raw = spark.createDataFrame(
        [("KS", "415", "a.csv"), ("OH", " ", "b.csv"), ("KS", "415", "b.csv")],
        "State string, Area_code string, file string",
    )
    ids = snapshot_table.with_row_id(raw, "row_id", exclude=("file",))
    assert ids.columns == ["row_id", "State", "Area_code", "file"]
    # The values as JSON (a blank is missing, so left out), SHA-256, first 20 hex digits;
    # the file name is not hashed, so the same row in two files gets one id.
    ks = hashlib.sha256(b'{"State":"KS","Area_code":"415"}').hexdigest()[:20]
    oh = hashlib.sha256(b'{"State":"OH"}').hexdigest()[:20]
    assert [r["row_id"] for r in ids.collect()] == [ks, oh, ks]
    with pytest.raises(LakemlError, match="entity_from_row makes the column 'State'"):
        snapshot_table.with_row_id(raw, "State")


def test_a_table_shipped_as_train_and_test_files_without_ids(
    spark: SparkSession, tmp_path: Path
) -> None:
    folder = tmp_path / "shipped"
    folder.mkdir()
    header = "Account length,Area code,Churn\n"
    # 40 subscribers to learn from (every third churned), 2 to test on.
    learn = [f"{100 + i},{(415, 408)[i % 2]},{('FALSE', 'TRUE')[i % 3 == 0]}" for i in range(40)]
    (folder / "part-80.csv").write_text(header + "\n".join(learn) + "\n")
    (folder / "part-20.csv").write_text(header + "84,408,TRUE\n75,510,FALSE\n")
    (folder / "README.md").write_text("not a table\n")
    cfg = load_config(
        CONF,
        [
            f"storage.root={tmp_path / 'root'}",
            "source.kind=table",
            f"source.path={folder}",
            "source.table.options={header: 'true', pathGlobFilter: 'part-*.csv'}",
            "source.table.entity_from_row=true",
            "source.table.entity_col=subscriber_id",
            "source.table.file_name_col=source_file",
            "source.table.label_col=Churn",
            "source.table.positive_values=['TRUE']",
            "source.table.snapshot_date=2020-01-31",
            "source.table.types={Account length: int}",
            "train.entity_col=subscriber_id",
            "train.categorical_cols=[Area_code]",
            "train.split={method: column, column: source_file, test_values: [part-20.csv]}",
        ],
    )
    paths = {name: cfg.table(name) for name in ("silver", "quarantine", "features", "labels")}
    t = cfg.source.table
    result = snapshot_table.update(spark, t, str(folder), "snapshot_date", "churned", paths)
    assert (result.input_rows, result.silver_rows, result.quarantined) == (42, 42, 0)
    features = storage.read(spark, paths["features"])
    assert features.columns == [
        "subscriber_id", "snapshot_date", "Account_length", "Area_code", "source_file"
    ]  # fmt: skip
    rows = {r["Account_length"]: r for r in features.collect()}
    assert {a: r["source_file"] for a, r in rows.items()} == {
        **{100 + i: "part-80.csv" for i in range(40)},
        84: "part-20.csv",
        75: "part-20.csv",
    }
    assert (
        rows[84]["subscriber_id"]
        == hashlib.sha256(b'{"Account_length":"84","Area_code":"408","Churn":"TRUE"}').hexdigest()[
            :20
        ]
    )
    labels = {
        r["subscriber_id"]: r["churned"] for r in storage.read(spark, paths["labels"]).collect()
    }
    assert sum(labels[r["subscriber_id"]] for r in rows.values()) == 14 + 1  # i = 0, 3, .., 39

    # The shipped split is kept: exactly the second file's rows test.
    ts = trainset.load_training_set(spark, cfg.train, paths["features"], paths["labels"])
    test_ids = {r["subscriber_id"] for r in ts.window(trainset.TEST).collect()}
    ts.cached.unpersist()
    assert test_ids == {rows[84]["subscriber_id"], rows[75]["subscriber_id"]}
    assert ts.spec.columns == ["Account_length", "Area_code"]  # the file name is no feature
    assert ts.split.as_tags()["split_test_values"] == '["part-20.csv"]'
