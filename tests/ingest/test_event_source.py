"""An event log described by `source.events`: timestamp encodings, CSV records, declared
rules, and the config errors a description can have (all before Spark starts)."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeml.core import storage
from lakeml.core.config import SourceConfig, load_config
from lakeml.core.errors import LakemlError
from lakeml.ingest import bronze, rules

REPO = Path(__file__).resolve().parents[2]
INGESTED = datetime(2024, 2, 1, tzinfo=timezone.utc)
BRONZE = "value string, source_file string, ingested_at timestamp"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def source(fields: list[dict], **events: Any) -> SourceConfig:
    spec = {"fields": fields, "entity": "id", "timestamp": "at", **events}
    return SourceConfig.model_validate({"kind": "events", "events": spec})


def judged(spark: SparkSession, src: SourceConfig, *values: str) -> DataFrame:
    rows = [(v, "f", INGESTED) for v in values]
    return rules.judge(spark.createDataFrame(rows, BRONZE), src)


ID = {"name": "id", "required": True}


@pytest.mark.parametrize(
    ("encoding", "kind", "value", "expected"),
    [
        ("epoch_ms", "long", 1704067200123, utc("2024-01-01 00:00:00.123")),
        ("epoch_s", "long", 1704067200, utc("2024-01-01 00:00:00")),
        ("epoch_s", "double", 1704067200.5, utc("2024-01-01 00:00:00.5")),
        ("iso8601", "string", "2024-01-01T01:02:03Z", utc("2024-01-01 01:02:03")),
        # An offset is honoured: 01:02 at +02:00 is 23:02 UTC the day before.
        ("iso8601", "string", "2024-01-01T01:02:03+02:00", utc("2023-12-31 23:02:03")),
        ("iso8601", "string", "2024-01-01 01:02:03", utc("2024-01-01 01:02:03")),  # no offset: UTC
        ("date", "string", "2024-01-01", utc("2024-01-01 00:00:00")),
    ],
)
def test_each_timestamp_encoding_gives_the_utc_time_and_day(
    spark: SparkSession, encoding: str, kind: str, value: Any, expected: datetime
) -> None:
    src = source([ID, {"name": "at", "type": kind, "timestamp": encoding, "required": True}])

    row = judged(spark, src, json.dumps({"id": "a", "at": value})).first()

    assert row["rule"] is None
    assert row["ts"] == expected.replace(tzinfo=None) or row["ts"] == expected
    assert row["event_date"] == expected.date()


@pytest.mark.parametrize(
    ("encoding", "kind", "value"),
    [
        ("epoch_ms", "long", "yesterday"),
        ("epoch_ms", "long", 9_000_000_000_000_000),  # past year 9999
        ("epoch_s", "long", 1.5),  # a long field takes whole numbers only
        ("iso8601", "string", "next tuesday"),
        ("date", "string", "01/02/2024"),
    ],
)
def test_a_time_that_does_not_parse_in_its_encoding_is_quarantined(
    spark: SparkSession, encoding: str, kind: str, value: Any
) -> None:
    src = source([ID, {"name": "at", "type": kind, "timestamp": encoding, "required": True}])
    assert judged(spark, src, json.dumps({"id": "a", "at": value})).first()["rule"] == (
        "wrong_type:at"
    )


TYPED_FIELDS = [
    ID,
    {"name": "at", "type": "long", "timestamp": "epoch_ms", "required": True},
    {"name": "n", "type": "long"},
    {"name": "k", "type": "int"},
    {"name": "x", "type": "double"},
    {"name": "b", "type": "boolean"},
]
AT = 1704067200000  # 2024-01-01 00:00 UTC


def test_typed_fields_take_what_their_text_casts_to_and_name_the_field_otherwise(
    spark: SparkSession,
) -> None:
    """Each field is read as text and cast to its type: a number or boolean written as a
    string is taken as such, a value of another kind or out of its type's range is
    `wrong_type:<field>`, and a line that is not one JSON object is `malformed_json`."""
    cases = [
        # (record, rule, (n, k, x, b)), worked out by hand from Spark's casts of the text
        ({"id": "a", "at": AT, "n": 12, "k": 3, "x": 2, "b": True}, None, (12, 3, 2.0, True)),
        # Numbers and booleans written as strings cast as text does.
        ({"id": "b", "at": AT, "n": "12", "k": "3", "x": "2.5", "b": "true"}, None,
         (12, 3, 2.5, True)),
        ({"id": "c", "at": AT, "b": 1}, None, (None, None, None, True)),  # '1' casts to true
        ({"id": "d", "at": AT, "n": None, "x": -0.5}, None, (None, None, -0.5, None)),
        ({"id": "e", "at": AT, "extra": {"nested": [1]}}, None, (None, None, None, None)),
        ({"id": "f", "at": AT, "n": 12.5}, "wrong_type:n", None),
        ({"id": "g", "at": AT, "n": 99999999999999999999}, "wrong_type:n", None),
        ({"id": "h", "at": AT, "k": 3000000000}, "wrong_type:k", None),
        ({"id": "i", "at": AT, "x": "two"}, "wrong_type:x", None),
        ({"id": "j", "at": AT, "b": "maybe"}, "wrong_type:b", None),
        ({"at": AT, "n": 1.5}, "missing_field:id", None),  # required fields are checked first
        ({"id": "k", "at": "noon", "n": 1}, "wrong_type:at", None),
    ]  # fmt: skip
    lines = [json.dumps(record) for record, _, _ in cases] + ['{"id": "l", "at": 1', "[1, 2]"]
    by_line = {row["value"]: row for row in judged(spark, source(TYPED_FIELDS), *lines).collect()}
    assert [by_line[line]["rule"] for line in lines] == [
        *[rule for _, rule, _ in cases],
        "malformed_json",
        "malformed_json",
    ]
    for line, (_, rule, values) in zip(lines, cases, strict=False):
        if rule is None:
            row = by_line[line]
            assert (row["n"], row["k"], row["x"], row["b"]) == values, line
            assert row["ts"] in (datetime(2024, 1, 1), utc("2024-01-01 00:00:00")), line
            assert row["event_date"] == date(2024, 1, 1)


CSV_FIELDS = [
    ID,
    {"name": "at", "timestamp": "iso8601", "required": True},
    {"name": "kind", "required": True},
    {"name": "qty", "type": "int"},
]


def test_csv_records_parse_by_position_and_rules_name_what_is_wrong(spark: SparkSession) -> None:
    src = source(
        CSV_FIELDS,
        format="csv",
        event_type="kind",
        rules=[
            {"name": "blank_id", "column": "id", "not_blank": True},
            {"name": "odd_kind", "column": "kind", "allowed": ["buy", "return"]},
            {"name": "no_qty", "column": "qty", "min": 1},
            {"name": "huge_qty", "column": "qty", "max": 100},
            {"name": "too_old", "column": "at", "after": "2020-01-01"},
        ],
    )
    cases = [
        ("a,2024-01-01T10:00:00Z,buy,2", None),
        ("a,2024-01-01T10:00:00Z,buy,", None),  # qty is optional
        ("a,2024-01-01T10:00:00Z,buy", "malformed_csv"),  # a field short
        ("a,2024-01-01T10:00:00Z,buy,2,9", "malformed_csv"),  # a field too many
        (",2024-01-01T10:00:00Z,buy,2", "missing_field:id"),
        ("a,2024-01-01T10:00:00Z,buy,two", "wrong_type:qty"),
        ("a,not a time,buy,2", "wrong_type:at"),
        ("a,2019-12-31T23:59:59Z,buy,2", "too_old"),
        ("  ,2024-01-01T10:00:00Z,buy,2", "blank_id"),
        ("a,2024-01-01T10:00:00Z,gift,2", "odd_kind"),
        ("a,2024-01-01T10:00:00Z,buy,0", "no_qty"),
        ("a,2024-01-01T10:00:00Z,buy,101", "huge_qty"),
        ("a,2024-02-01T02:00:01Z,buy,2", "ts_in_future"),  # 60 minutes of skew by default
    ]
    actual = judged(spark, src, *[v for v, _ in cases]).select("value", "rule").collect()
    assert {r["value"]: r["rule"] for r in actual} == dict(cases)


def test_csv_headers_are_skipped_and_the_pattern_picks_the_files(
    spark: SparkSession, tmp_path: Path
) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "2024-01-01.csv").write_text("id,at,kind,qty\na,2024-01-01T10:00:00Z,buy,1\n")
    (raw / "2024-01-02.csv").write_text("id,at,kind,qty\nb,2024-01-02T10:00:00Z,buy,3\n")
    (raw / "notes.txt").write_text("not a record\n")
    src = source(CSV_FIELDS, format="csv", pattern="*.csv")

    result = bronze.ingest(spark, str(raw), str(tmp_path / "bronze"), src.events)

    assert result == bronze.BronzeResult(rows=2, files=2)


def test_parquet_rows_become_events(spark: SparkSession, tmp_path: Path) -> None:
    rows = [("a", utc("2024-01-01 10:00:00"), 2), ("b", utc("2024-01-02 11:00:00"), 1)]
    spark.createDataFrame(rows, "id string, at timestamp, qty int").write.parquet(
        str(tmp_path / "raw")
    )
    src = source(
        [
            ID,
            {"name": "at", "timestamp": "iso8601", "required": True},
            {"name": "qty", "type": "int"},
        ],
        format="parquet",
    )
    bronze.ingest(spark, str(tmp_path / "raw"), str(tmp_path / "bronze"), src.events)

    out = rules.judge(storage.read(spark, str(tmp_path / "bronze")), src).select(
        "id", F.date_format("ts", "yyyy-MM-dd HH:mm:ss").alias("ts"), "event_date", "qty", "rule"
    )
    assert sorted(tuple(r) for r in out.collect()) == [
        ("a", "2024-01-01 10:00:00", date(2024, 1, 1), 2, None),
        ("b", "2024-01-02 11:00:00", date(2024, 1, 2), 1, None),
    ]


def purchases(tmp_path: Path, change: Any) -> Path:
    """conf/purchases.yaml with `change(config)` applied, written under tmp_path."""
    cfg = yaml.safe_load((REPO / "conf" / "purchases.yaml").read_text())
    change(cfg)
    path = tmp_path / "purchases.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def aggregation(cfg: dict, name: str) -> dict:
    return next(a for a in cfg["features"]["aggregations"] if a["name"] == name)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: aggregation(c, "spend").update(column="price"),
            "config key 'features.aggregations[2].column': 'price' is not a column",
        ),
        (
            lambda c: aggregation(c, "purchases").update(where={"shop": "x"}),
            "config key 'features.aggregations[0].where': 'shop' is not a column",
        ),
        (
            lambda c: aggregation(c, "spend").update(windows=[14, 0]),
            "config key 'features.aggregations[2].windows[1]': must be at least 1",
        ),
        (
            lambda c: aggregation(c, "return_rate").update(denominator="purchase"),
            "config key 'features.aggregations[8].denominator': 'purchase' is not a count",
        ),
        (
            lambda c: c["features"]["target"].update(event_types=["purchases"]),
            "config key 'features.target.event_types[0]': 'purchases' is not an allowed type",
        ),
        (
            lambda c: c["source"]["events"]["fields"][1].update(timestamp="epoch_us"),
            "config key 'source.events.fields[1].timestamp': unknown value 'epoch_us'; choose",
        ),
        (
            lambda c: c["source"]["events"]["fields"][4].update(timestamp="iso8601"),
            "iso8601 needs a field of type string, got int",
        ),
        (
            lambda c: c["source"]["events"].update(entity="customer"),
            "config key 'source.events.entity': 'customer' is not a field column",
        ),
        (
            lambda c: c["features"]["target"].update(kind="churn_event", event_types=[]),
            "config key 'features.target.event_types': must name at least one event type",
        ),
        (
            lambda c: c["train"].update(entity_col="user_id"),
            "config key 'train.entity_col': must equal source.events.entity ('customer_id')",
        ),
        (
            lambda c: c["source"]["events"]["rules"].append({"name": "x", "column": "qty2",
                                                             "min": 1}),
            "config key 'source.events.rules[4].column': 'qty2' is not a column of the log",
        ),
    ],
)  # fmt: skip
def test_a_bad_event_log_description_is_one_line_naming_the_key(
    tmp_path: Path, change: Any, message: str
) -> None:
    with pytest.raises(LakemlError) as raised:
        load_config(purchases(tmp_path, change))
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_an_event_source_needs_a_description(tmp_path: Path) -> None:
    (tmp_path / "bare.yaml").write_text("storage: {root: /tmp/x}\n")
    with pytest.raises(LakemlError, match="'source.events': must describe the event log"):
        load_config(tmp_path / "bare.yaml")


def test_the_sparkify_preset_is_laid_under_the_file(tmp_path: Path) -> None:
    (tmp_path / "presets").mkdir()
    preset = (REPO / "conf" / "presets" / "sparkify.yaml").read_text()
    (tmp_path / "presets" / "sparkify.yaml").write_text(preset)
    (tmp_path / "mine.yaml").write_text(
        "preset: sparkify\nstorage: {root: /tmp/x}\nfeatures: {windows: [3]}\n"
    )
    cfg = load_config(tmp_path / "mine.yaml")
    assert cfg.features.windows == [3]  # the file's value
    assert cfg.features.label_horizon_days == 14  # the preset's, merged into the same section
    assert cfg.source.events.entity == "user_id"
    (tmp_path / "other.yaml").write_text("preset: nope\nstorage: {root: /tmp/x}\n")
    with pytest.raises(LakemlError, match="no preset 'nope'.*available: sparkify"):
        load_config(tmp_path / "other.yaml")


def test_silver_types_come_from_the_field_types(spark: SparkSession) -> None:
    src = source([ID, {"name": "at", "type": "long", "timestamp": "epoch_ms"},
                  {"name": "n", "type": "int"}, {"name": "ok", "type": "boolean"},
                  {"name": "x", "type": "double", "column": "price"}])  # fmt: skip
    out = judged(spark, src, json.dumps({"id": "a", "at": 0, "n": 1, "ok": True, "x": 2.5}))
    types = dict((f.name, f.dataType) for f in out.schema.fields)
    assert types["n"] == T.IntegerType() and types["ok"] == T.BooleanType()
    assert types["price"] == T.DoubleType() and types["ts"] == T.TimestampType()
    assert out.columns[:4] == ["value", "rule", "event_id", "id"]
