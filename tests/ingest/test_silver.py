from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_column_equality, assert_df_equality
from delta.tables import DeltaTable
from fault_harness import crash_on_write
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from sparkify import EVENTS, SOURCE

from lakeml.core import storage
from lakeml.core.errors import LakemlError
from lakeml.ingest import bronze, rules, silver

COLUMNS = rules.silver_columns(EVENTS)

BRONZE = T.StructType(
    [
        T.StructField("value", T.StringType()),
        T.StructField("source_file", T.StringType()),
        T.StructField("ingested_at", T.TimestampType()),
    ]
)
WINDOWS_UA = "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:31.0) Gecko/20100101 Firefox/31.0"
# A real eventsim (Sparkify) event: Colin Freeman playing Rockpools.
EVENT: dict[str, Any] = {
    "ts": 1538352117000,
    "userId": "30",
    "sessionId": 29,
    "page": "NextSong",
    "auth": "Logged In",
    "method": "PUT",
    "status": 200,
    "level": "paid",
    "itemInSession": 50,
    "location": "Bakersfield, CA",
    "userAgent": WINDOWS_UA,
    "lastName": "Freeman",
    "firstName": "Colin",
    "registration": 1538173362000,
    "gender": "M",
    "artist": "Martha Tilston",
    "song": "Rockpools",
    "length": 277.89016,
}
INGESTED = datetime(2018, 10, 2, 3, 0, tzinfo=timezone.utc)
# Silver's columns and types for an eventsim log, as the hand-written silver stage wrote them
# before the Sparkify preset described them (conf/presets/sparkify.yaml).
SILVER_SCHEMA = T.StructType(
    [
        T.StructField(name, kind)
        for name, kind in [
            ("event_id", T.StringType()), ("user_id", T.StringType()),
            ("session_id", T.LongType()), ("item_in_session", T.LongType()),
            ("ts", T.TimestampType()), ("event_date", T.DateType()), ("page", T.StringType()),
            ("auth", T.StringType()), ("level", T.StringType()), ("artist", T.StringType()),
            ("song", T.StringType()), ("length", T.DoubleType()), ("gender", T.StringType()),
            ("first_name", T.StringType()), ("last_name", T.StringType()),
            ("location", T.StringType()), ("state", T.StringType()),
            ("user_agent", T.StringType()), ("platform", T.StringType()),
            ("registration", T.TimestampType()), ("method", T.StringType()),
            ("status", T.IntegerType()), ("source_file", T.StringType()),
            ("ingested_at", T.TimestampType()),
        ]
    ]
)  # fmt: skip


def line(**changes: Any) -> str:
    """EVENT as a JSON line; a change to `...` removes the field."""
    event = {**EVENT, **changes}
    return json.dumps({k: v for k, v in event.items() if v is not ...})


def bronze_rows(spark: SparkSession, *values: str, source: str = "day1.json") -> DataFrame:
    return spark.createDataFrame([(v, source, INGESTED) for v in values], BRONZE)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


def test_each_line_gets_the_first_rule_it_breaks(spark: SparkSession) -> None:
    cases = [
        (line(), None),
        ('{"ts": 1538352117000, "userId": "3', "malformed_json"),
        ("[1, 2]", "malformed_json"),
        ('[{"ts": 1538352117000}]', "malformed_json"),
        ('"just a string"', "malformed_json"),
        ("null", "malformed_json"),
        ("", "malformed_json"),
        (line().replace('"', "'"), "malformed_json"),  # single quotes are not JSON
        ("{}", "missing_field:ts"),
        (line(ts=...), "missing_field:ts"),
        (line(userId=None), "missing_field:userId"),
        (line(sessionId=...), "missing_field:sessionId"),
        (line(itemInSession=...), "missing_field:itemInSession"),
        (line(page=...), "missing_field:page"),
        (line(auth=...), "missing_field:auth"),
        (line(level=...), "missing_field:level"),
        (line(level=..., ts="yesterday"), "missing_field:level"),
        (line(ts="yesterday"), "wrong_type:ts"),
        (line(ts=1538352117000.5), "wrong_type:ts"),  # epoch ms are whole numbers
        # Fits a long but lies beyond year 9999: cannot be a timestamp.
        (line(ts=9_000_000_000_000_000), "wrong_type:ts"),
        (line(sessionId="abc"), "wrong_type:sessionId"),
        (line(itemInSession="first"), "wrong_type:itemInSession"),
        (line(length="long"), "wrong_type:length"),
        (line(registration="soon"), "wrong_type:registration"),
        (line(status="OK"), "wrong_type:status"),
        (line(userId=""), "missing_user_id"),
        (line(userId="", length=-1.0), "missing_user_id"),
        (line(length=-1.0), "negative_length"),
        # Registered one millisecond after the event.
        (line(registration=1538352117001), "event_before_registration"),
        # ts and registration in seconds: 1538352117 ms is 1970-01-18, before 2000-01-01.
        (line(ts=1538352117, registration=1538173362), "ts_too_early"),
        (line(ts=1538352117, registration=1538173362, userId=""), "ts_too_early"),
        # 2000-01-01 00:00 UTC is 10957 days * 86400000 ms after the epoch.
        (line(ts=946684799999, registration=None), "ts_too_early"),
        (line(ts=946684800000, registration=None), None),
        # Registration in seconds, ts in milliseconds: registered 1970-01-18.
        (line(registration=1538173362), "registration_too_early"),
        (line(registration=946684799999), "registration_too_early"),
        (line(registration=946684800000), None),
        (line(registration=1538173362, length=-1.0), "registration_too_early"),
        # Ingested 2018-10-02 03:00 UTC = 1538449200000 ms; 60 minutes of skew = 04:00.
        (line(ts=1538452800000), None),
        (line(ts=1538452800001), "ts_in_future"),
        (line(ts=1538452800001, length=-1.0), "ts_in_future"),
        # Non-NextSong events have no length and some users no registration: both fine.
        (line(page="Home", length=..., artist=..., song=...), None),
        (line(registration=None), None),
    ]
    df = bronze_rows(spark, *[value for value, _ in cases])
    expected = spark.createDataFrame(cases, "value string, rule string")

    actual = rules.judge(df, SOURCE).select("value", "rule")

    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_a_value_the_typed_parse_refuses_is_read_from_its_text(spark: SparkSession) -> None:
    # Numbers written as JSON strings and a 64-bit time as text: each line fails the parse
    # by declared types, so it is parsed again as text, where each value reads as its type.
    # Every such line is Colin's event, with his event id.
    spelled = [
        line(sessionId="29"),
        line(itemInSession="50", status="200"),
        line(ts="1538352117000", length="277.89016"),
        line(registration="1538173362000"),
    ]
    judged = rules.judge(bronze_rows(spark, line(), *spelled), SOURCE)

    rows = judged.select("rule", *[c for c in COLUMNS if c != "ingested_at"]).collect()
    assert [r["rule"] for r in rows] == [None] * 5
    assert len({tuple(r) for r in rows}) == 1  # five lines, one event: every column equal


def test_time_rules_follow_the_source_config(spark: SparkSession) -> None:
    # Ingested 2018-10-02 03:00 UTC (INGESTED); no event before 2018-10-02, no skew.
    strict = SOURCE.model_copy(update={"min_event_date": "2018-10-02", "clock_skew_minutes": 0})
    cases = [
        # value, rule with `strict`, rule with the defaults (2000-01-01, 60 minutes)
        (line(), "ts_too_early", None),  # 2018-10-01 00:01:57
        (line(ts=1538438399999), "ts_too_early", None),  # 2018-10-01 23:59:59.999
        (line(ts=1538438400000), None, None),  # 2018-10-02 00:00 = 17806 days * 86400000
        (line(ts=1538449200000), None, None),  # 03:00, the ingestion time itself
        (line(ts=1538449200001), "ts_in_future", None),  # 1 ms after it
    ]
    df = bronze_rows(spark, *[value for value, _, _ in cases])
    expected = spark.createDataFrame(cases, "value string, strict string, default string")

    actual = (
        rules.judge(df, strict)
        .select("value", F.col("rule").alias("strict"))
        .join(rules.judge(df, SOURCE).select("value", F.col("rule").alias("default")), "value")
    )

    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_valid_line_becomes_the_exact_silver_row(spark: SparkSession) -> None:
    # The canonical form the SHA-256 scheme hashes for event_id (tables created before the
    # default scheme): typed fields in name order (the double registration prints as
    # 1.538173362E12), whatever the raw line's key order.
    canonical = (
        '{"artist":"Martha Tilston","auth":"Logged In","firstName":"Colin","gender":"M",'
        '"itemInSession":50,"lastName":"Freeman","length":277.89016,"level":"paid",'
        '"location":"Bakersfield, CA","method":"PUT","page":"NextSong",'
        '"registration":1.538173362E12,"sessionId":29,"song":"Rockpools","status":200,'
        f'"ts":1538352117000,"userAgent":"{WINDOWS_UA}","userId":"30"}}'
    )
    expected = spark.createDataFrame(
        [
            (
                hashlib.sha256(canonical.encode()).hexdigest(),
                "30",
                29,
                50,
                utc(2018, 10, 1, 0, 1, 57),  # 1538352117 s = 2018-10-01 00:00 UTC + 117 s
                date(2018, 10, 1),
                "NextSong",
                "Logged In",
                "paid",
                "Martha Tilston",
                "Rockpools",
                277.89016,
                "M",
                "Colin",
                "Freeman",
                "Bakersfield, CA",
                "CA",
                WINDOWS_UA,
                "Windows",
                utc(2018, 9, 28, 22, 22, 42),  # 1538173362 s = 2018-09-28 + 80562 s
                "PUT",
                200,
                "day1.json",
                INGESTED,
            )
        ],
        SILVER_SCHEMA,
    )

    actual = rules.judge(bronze_rows(spark, line()), SOURCE, rules.SHA256_JSON).select(*COLUMNS)

    assert sorted(actual.columns) == sorted(SILVER_SCHEMA.fieldNames())
    assert_df_equality(actual.select(*SILVER_SCHEMA.fieldNames()), expected, ignore_nullable=True)


def test_platform_comes_from_the_user_agent(spark: SparkSession) -> None:
    agents = [
        (WINDOWS_UA, "Windows"),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_4) AppleWebKit/537.77.4 "
            "(KHTML, like Gecko) Version/7.0.5 Safari/537.77.4",
            "Mac",
        ),
        (
            '"Mozilla/5.0 (iPhone; CPU iPhone OS 7_1_2 like Mac OS X) AppleWebKit/537.51.2 '
            '(KHTML, like Gecko) Version/7.0 Mobile/11D257 Safari/9537.53"',
            "iPhone",
        ),
        (
            '"Mozilla/5.0 (iPad; CPU OS 7_1_2 like Mac OS X) AppleWebKit/537.51.2 '
            '(KHTML, like Gecko) Version/7.0 Mobile/11D257 Safari/9537.53"',
            "iPad",
        ),
        ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:31.0) Gecko/20100101 Firefox/31.0", "Linux"),
        ("Mozilla/5.0 (Linux; Android 4.4.2; Nexus 5) AppleWebKit/537.36", "Android"),
        ("curl/7.35.0", "Other"),
        (None, "Other"),
    ]
    df = spark.createDataFrame(agents, "user_agent string, expected string").select(
        F.expr(EVENTS.derived["platform"]).alias("platform"), "expected"
    )

    assert_column_equality(df, "platform", "expected")


def test_state_is_the_text_after_the_last_comma(spark: SparkSession) -> None:
    locations = [
        ("Bakersfield, CA", "CA"),
        ("New York-Newark-Jersey City, NY-NJ-PA", "NY-NJ-PA"),
        ("Washington, Arlington, DC-VA-MD-WV ", "DC-VA-MD-WV"),
        ("Nowhere", None),
        ("Trailing comma, ", None),
        (None, None),
    ]
    df = spark.createDataFrame(locations, "location string, expected string").select(
        F.expr(EVENTS.derived["state"]).alias("state"), "expected"
    )

    assert_column_equality(df, "state", "expected")


def with_row_ids(events: DataFrame) -> DataFrame:
    return events.withColumn(silver.ROW_ID, F.monotonically_increasing_id())


@pytest.mark.parametrize("ranked", ["every row", "later copies only"])
def test_exact_duplicates_share_an_event_id_and_enter_silver_once(
    spark: SparkSession, ranked: str
) -> None:
    colin = line()
    # The same event with other key order, spacing and number spelling.
    colin_again = json.dumps(dict(reversed(list(EVENT.items()))), indent=1).replace(
        "1538173362000", "1538173362000.0"
    )
    later = line(ts=1538352120000, itemInSession=51)  # 3 s later: another event
    earlier_file = bronze_rows(spark, colin_again, source="a.json")
    df = earlier_file.union(bronze_rows(spark, colin, later, source="b.json"))
    events = with_row_ids(rules.judge(df, SOURCE).select(*COLUMNS)).cache()
    assert events.select("event_id").distinct().count() == 2  # 3 lines, 2 events

    copies = None
    if ranked == "later copies only":  # Colin's line in b.json (the later file name)
        copies = silver.later_copies(events, silver.repeated_hashes(events))
        colin_in_b = events.where(
            (F.col("source_file") == "b.json") & (F.col("item_in_session") == 50)
        )
        assert_df_equality(copies, colin_in_b.select(silver.ROW_ID), ignore_nullable=True)

    unique = silver.drop_duplicate_events(events, COLUMNS, later=copies)

    # Colin's event once (from a.json: same ingest time, first file name), the later one once.
    expected = spark.createDataFrame(
        [(utc(2018, 10, 1, 0, 1, 57), "a.json"), (utc(2018, 10, 1, 0, 2, 0), "b.json")],
        "ts timestamp, source_file string",
    )
    assert_df_equality(
        unique.select("ts", "source_file"), expected, ignore_row_order=True, ignore_nullable=True
    )


def test_later_copies_rank_by_the_whole_id_so_a_shared_hash_drops_nothing(
    spark: SparkSession,
) -> None:
    # Every row's hash passed as repeated, as if all of the ids shared one 64-bit hash:
    # still only the true copy (the same line twice in one file at one time) is dropped.
    df = bronze_rows(spark, line(), line(itemInSession=51), line(), line(itemInSession=52))
    events = with_row_ids(rules.judge(df, SOURCE).select(*COLUMNS)).cache()
    every_hash = events.select(F.xxhash64(*silver.ID_KEY).alias("_hash"))

    copies = silver.later_copies(events, every_hash).collect()

    items = events.select(silver.ROW_ID, "item_in_session").collect()
    first_50 = min(r[silver.ROW_ID] for r in items if r["item_in_session"] == 50)
    second_50 = max(r[silver.ROW_ID] for r in items if r["item_in_session"] == 50)
    assert first_50 != second_50
    assert [r[silver.ROW_ID] for r in copies] == [second_50]


def test_default_event_ids_are_32_hex_digits_and_tell_every_changed_field_apart(
    spark: SparkSession,
) -> None:
    # Colin's event, each field changed in turn, and two events that hold the same values
    # in other fields: the artist's name as the song with no artist, and the other way.
    variants = {
        "colin": line(),
        **{f"changed {k}": line(**{k: v}) for k, v in [
            ("ts", 1538352117001), ("sessionId", 30), ("length", 277.89017), ("song", "Rockpool"),
            ("level", "free"), ("registration", 1538173362001),
        ]},
        "artist as song": line(artist=None, song="Martha Tilston"),
        "song as artist": line(artist="Martha Tilston", song=None),
    }  # fmt: skip
    judged = rules.judge(bronze_rows(spark, *variants.values()), SOURCE)
    ids = {r["value"]: r["event_id"] for r in judged.select("value", "event_id").collect()}
    by_name = {name: ids[value] for name, value in variants.items()}

    assert all(len(i) == 32 and set(i) <= set("0123456789abcdef") for i in by_name.values())
    assert len(set(by_name.values())) == len(variants)  # every event its own id
    # The control: Spark's hash of the values alone skips nulls, so those two would collide.
    plain = judged.select(F.xxhash64(*[F.col("artist"), F.col("song")]).alias("h"), "value")
    pair = plain.where(F.col("value").isin(variants["artist as song"], variants["song as artist"]))
    assert pair.select("h").distinct().count() == 1


@pytest.mark.parametrize("ranked", ["every row", "later copies only"])
def test_events_already_in_silver_are_dropped(spark: SparkSession, ranked: str) -> None:
    df = bronze_rows(spark, line(), line(ts=1538352120000, itemInSession=51), line())
    events = with_row_ids(rules.judge(df, SOURCE).select(*COLUMNS)).cache()
    already_in_silver = events.where(F.col("item_in_session") == 50)
    copies = None
    if ranked == "later copies only":
        copies = silver.later_copies(events, silver.repeated_hashes(events))

    fresh = silver.drop_duplicate_events(events, COLUMNS, already_in_silver, copies)

    assert [r["item_in_session"] for r in fresh.collect()] == [51]


def test_quarantine_keeps_the_raw_line_and_the_rule(spark: SparkSession) -> None:
    df = bronze_rows(spark, "garbage", line(userId=""), line())

    staged = rules.classify(df, SOURCE)
    quarantine = silver.to_quarantine(staged.where(F.col("rule").isNotNull()))

    expected = spark.createDataFrame(
        [
            ("garbage", "day1.json", INGESTED, "malformed_json"),
            (line(userId=""), "day1.json", INGESTED, "missing_user_id"),
        ],
        "value string, source_file string, ingested_at timestamp, rule string",
    )
    assert quarantine.schema.fieldNames() == silver.QUARANTINE_SCHEMA.fieldNames()
    assert quarantine.where(F.col("quarantined_at").isNull()).count() == 0
    assert_df_equality(
        quarantine.drop("quarantined_at"), expected, ignore_row_order=True, ignore_nullable=True
    )


def test_update_without_bronze_says_to_run_bronze_first(
    spark: SparkSession, tmp_path: Path
) -> None:
    with pytest.raises(LakemlError, match="no bronze table"):
        silver.update(spark, str(tmp_path / "b"), str(tmp_path / "s"), str(tmp_path / "q"), SOURCE)


def test_counts_reconcile_when_every_row_is_kept_rejected_or_a_duplicate() -> None:
    assert silver.SilverResult(10, 7, 2, 1, {"malformed_json": 2}, date(2018, 10, 5)).reconciles
    assert not silver.SilverResult(10, 7, 2, 0, {"malformed_json": 2}, None).reconciles


def write_lines(path: Path, *lines: str) -> None:
    path.write_text("".join(f"{x}\n" for x in lines))


class Lake:
    """A raw folder and the bronze, silver and quarantine tables of one test."""

    def __init__(self, spark: SparkSession, root: Path) -> None:
        self.spark, self.raw = spark, root / "raw"
        self.raw.mkdir()
        self.paths = {name: str(root / name) for name in ("bronze", "silver", "quarantine")}

    def run(self) -> tuple[bronze.BronzeResult, silver.SilverResult]:
        b = bronze.ingest(self.spark, str(self.raw), self.paths["bronze"], EVENTS)
        return b, self.update()

    def update(self) -> silver.SilverResult:
        p = self.paths
        return silver.update(self.spark, p["bronze"], p["silver"], p["quarantine"], SOURCE)

    def versions(self) -> dict[str, int | None]:
        return {name: storage.version(self.spark, path) for name, path in self.paths.items()}

    def table(self, name: str) -> DataFrame:
        return storage.read(self.spark, self.paths[name])

    def new_since(self) -> str | None:
        """The earliest event day silver's newest commit records (for gold)."""
        marker = storage.commit_metadata(self.spark, self.paths["silver"], silver.MARKER_KEY)
        return marker[silver.NEW_SINCE]


NOTHING_NEW = silver.SilverResult(0, 0, 0, 0, {}, None)


def test_bronze_and_silver_runs_reconcile_and_are_incremental(
    spark: SparkSession, tmp_path: Path
) -> None:
    lake = Lake(spark, tmp_path)
    colin = line()  # 2018-10-01 00:01:57
    second = line(ts=1538352120000, itemInSession=51)  # 2018-10-01 00:02:00
    logged_out = line(userId="", auth="Logged Out", ts=1538352130000)
    truncated = '{"ts": 1538352140000, "userId": "30", "sess'
    write_lines(lake.raw / "2018-10-01-events.json", colin, second, colin, logged_out, truncated)
    write_lines(lake.raw / "2018-10-02-events.json", "garbage", "<html>", "{{{")

    b, s = lake.run()
    assert lake.new_since() == "2018-10-01"

    # 5 + 3 lines; kept: colin, second; duplicate: colin again; the other 5 quarantined.
    assert b == bronze.BronzeResult(rows=8, files=2)
    assert s == silver.SilverResult(
        bronze_rows=8,
        silver_inserted=2,
        quarantined=5,
        duplicates_removed=1,
        quarantine_by_rule={"missing_user_id": 1, "malformed_json": 4},
        min_new_event_date=date(2018, 10, 1),
    )
    assert s.reconciles
    # One commit per table: bronze, quarantine, silver.
    assert lake.versions() == {"bronze": 0, "silver": 0, "quarantine": 0}
    expected = spark.createDataFrame(
        [
            (logged_out, "missing_user_id"),
            (truncated, "malformed_json"),
            ("garbage", "malformed_json"),
            ("<html>", "malformed_json"),
            ("{{{", "malformed_json"),
        ],
        "value string, rule string",
    )
    assert_df_equality(
        lake.table("quarantine").select("value", "rule"),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )

    versions = lake.versions()
    b, s = lake.run()

    assert (b, s) == (bronze.BronzeResult(rows=0, files=0), NOTHING_NEW)
    assert lake.versions() == versions  # a rerun with nothing new commits nothing

    on_oct_3 = line(ts=1538568000000)  # 2018-10-03 12:00:00 = 1538352000 + 2*86400 + 43200
    on_oct_2 = line(ts=1538467200000)  # 2018-10-02 08:00:00 = 1538352000 + 86400 + 28800
    write_lines(lake.raw / "2018-10-03-events.json", on_oct_3, second, on_oct_2)

    b, s = lake.run()

    # `second` was inserted by the first run: a duplicate now. The earliest new day is Oct 2.
    assert b == bronze.BronzeResult(rows=3, files=1)
    assert s == silver.SilverResult(3, 2, 0, 1, {}, date(2018, 10, 2))
    # The commit records, for gold, the batch's earliest valid day, known before the write:
    # Oct 1, of `second`. A bound: `second` turned out a duplicate, so Oct 2 was exact.
    assert lake.new_since() == "2018-10-01"
    # Nothing rejected: quarantine gets no commit.
    assert lake.versions() == {"bronze": 1, "silver": 1, "quarantine": 0}
    expected_kept = spark.createDataFrame(
        [
            (utc(2018, 10, 1, 0, 1, 57), date(2018, 10, 1)),
            (utc(2018, 10, 1, 0, 2, 0), date(2018, 10, 1)),
            (utc(2018, 10, 3, 12, 0, 0), date(2018, 10, 3)),
            (utc(2018, 10, 2, 8, 0, 0), date(2018, 10, 2)),
        ],
        "ts timestamp, event_date date",
    )
    assert_df_equality(
        lake.table("silver").select("ts", "event_date"),
        expected_kept,
        ignore_row_order=True,
        ignore_nullable=True,
    )
    detail = DeltaTable.forPath(spark, lake.paths["silver"]).detail().first()
    assert detail["partitionColumns"] == ["event_date"]


def test_a_batch_of_only_duplicates_is_counted_once(spark: SparkSession, tmp_path: Path) -> None:
    lake = Lake(spark, tmp_path)
    write_lines(lake.raw / "2018-10-01-events.json", line())
    lake.run()
    write_lines(lake.raw / "2018-10-02-events.json", line())  # the same event again

    _, s = lake.run()

    assert s == silver.SilverResult(1, 0, 0, 1, {}, None)
    assert lake.new_since() is None  # the commit adds no event
    # The silver commit holds no row but records the batch as done: the next run does not
    # count the duplicate again.
    assert lake.versions()["silver"] == 1
    assert lake.update() == NOTHING_NEW
    assert lake.versions()["silver"] == 1


@pytest.mark.parametrize(
    ("find_from", "limit", "copies", "only_repeats"),
    [
        (silver.FIND_REPEATS_FROM, silver.BROADCAST_REPEATS, 1, False),  # a small batch
        (3, silver.BROADCAST_REPEATS, 1, True),  # as large as FIND_REPEATS_FROM
        (3, 0, 1, False),  # more repeated ids than may be broadcast
        (3, 1, 1, True),  # one repeated id, one later copy: both within the limit
        (3, 1, 2, False),  # one repeated id, but two later copies: more than may be broadcast
    ],
)
def test_a_large_batch_drops_only_its_later_copies_unless_too_many_to_broadcast(
    spark: SparkSession,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    find_from: int,
    limit: int,
    copies: int,
    only_repeats: bool,
) -> None:
    monkeypatch.setattr(silver, "FIND_REPEATS_FROM", find_from)
    monkeypatch.setattr(silver, "BROADCAST_REPEATS", limit)
    passed: list[bool] = []
    rank = silver.drop_duplicate_events

    def spy(*args: object) -> DataFrame:
        passed.append(args[3] is not None)
        return rank(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(silver, "drop_duplicate_events", spy)
    lake = Lake(spark, tmp_path)
    again = [line()] * copies
    write_lines(lake.raw / "2018-10-01-events.json", line(), line(itemInSession=51), *again)

    _, s = lake.run()

    assert passed == [only_repeats]
    assert s == silver.SilverResult(2 + copies, 2, 0, copies, {}, date(2018, 10, 1))
    items = sorted(r[0] for r in lake.table("silver").select("item_in_session").collect())
    assert items == [50, 51]


def test_a_crash_between_the_quarantine_and_silver_writes_loses_and_repeats_nothing(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = Lake(spark, tmp_path)
    write_lines(lake.raw / "2018-10-01-events.json", line(), "garbage")
    bronze.ingest(spark, str(lake.raw), lake.paths["bronze"], EVENTS)
    crash_on_write(monkeypatch, "append", lake.paths["silver"])
    with pytest.raises(RuntimeError, match="the driver died"):
        lake.update()
    monkeypatch.undo()
    assert lake.table("quarantine").count() == 1  # written before the crash
    assert not storage.exists(spark, lake.paths["silver"])
    # Bronze grows before the rerun: the rerun's batch is larger than the crashed one.
    later = line(ts=1538352120000, itemInSession=51)
    write_lines(lake.raw / "2018-10-02-events.json", later, "<html>")

    b, s = lake.run()

    # The rerun accounts for all 4 bronze rows; "garbage" is not quarantined twice.
    assert b == bronze.BronzeResult(rows=2, files=1)
    assert s == silver.SilverResult(4, 2, 2, 0, {"malformed_json": 2}, date(2018, 10, 1))
    quarantined = sorted(r["value"] for r in lake.table("quarantine").collect())
    assert quarantined == ["<html>", "garbage"]
    assert lake.table("silver").count() == 2
    assert lake.update() == NOTHING_NEW


def test_bronze_compaction_brings_no_row_back(spark: SparkSession, tmp_path: Path) -> None:
    lake = Lake(spark, tmp_path)
    write_lines(lake.raw / "2018-10-01-events.json", line(), "garbage")
    write_lines(lake.raw / "2018-10-02-events.json", line(ts=1538467200000))
    lake.run()
    versions = lake.versions()
    # OPTIMIZE rewrites bronze's files in a new version; the rows keep their ingest time.
    DeltaTable.forPath(spark, lake.paths["bronze"]).optimize().executeCompaction()

    assert lake.update() == NOTHING_NEW
    assert {k: v for k, v in lake.versions().items() if k != "bronze"} == {
        "silver": versions["silver"],
        "quarantine": versions["quarantine"],
    }


def test_tables_written_before_markers_resume_after_their_newest_row(
    spark: SparkSession, tmp_path: Path
) -> None:
    lake = Lake(spark, tmp_path)
    write_lines(lake.raw / "2018-10-01-events.json", line(), "garbage")
    bronze.ingest(spark, str(lake.raw), lake.paths["bronze"], EVENTS)
    # Silver and quarantine as an older lakeml wrote them: the same rows, SHA-256 event ids,
    # no commit marker.
    staged = rules.classify(lake.table("bronze"), SOURCE, rules.SHA256_JSON)
    valid = staged.where(F.col("rule").isNull()).select(*COLUMNS)
    storage.append(valid, lake.paths["silver"], silver.PARTITION_COLUMNS)
    rejected = silver.to_quarantine(staged.where(F.col("rule").isNotNull()))
    storage.append(rejected, lake.paths["quarantine"])
    write_lines(lake.raw / "2018-10-02-events.json", line(ts=1538467200000), "<html>")

    _, s = lake.run()

    # Only the second file's rows are new.
    assert s == silver.SilverResult(2, 1, 1, 0, {"malformed_json": 1}, date(2018, 10, 2))
    assert lake.table("silver").count() == 2
    assert lake.table("quarantine").count() == 2


def test_events_out_of_time_are_quarantined_and_counts_still_reconcile(
    spark: SparkSession, tmp_path: Path
) -> None:
    lake = Lake(spark, tmp_path)
    in_seconds = line(ts=1538352117, registration=1538173362)  # 1970-01-18 as milliseconds
    in_2100 = line(ts=4102444800000)  # 2100-01-01: after this run's ingestion time + 60 min
    # 2017-12-01: early, but after 2000-01-01, so kept (no registration to be before)
    late_2017 = line(ts=1512086400000, registration=None)
    write_lines(lake.raw / "2018-10-01-events.json", line(), in_seconds, in_2100, line(), late_2017)

    _, s = lake.run()

    assert s == silver.SilverResult(
        bronze_rows=5,
        silver_inserted=2,
        quarantined=2,
        duplicates_removed=1,
        quarantine_by_rule={"ts_too_early": 1, "ts_in_future": 1},
        min_new_event_date=date(2017, 12, 1),
    )
    assert s.reconciles
    expected = spark.createDataFrame(
        [(in_seconds, "ts_too_early"), (in_2100, "ts_in_future")], "value string, rule string"
    )
    assert_df_equality(
        lake.table("quarantine").select("value", "rule"),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )
    kept = sorted(r["event_date"] for r in lake.table("silver").collect())
    assert kept == [date(2017, 12, 1), date(2018, 10, 1)]


def test_a_silver_table_keeps_the_event_id_scheme_it_was_created_with(
    spark: SparkSession, tmp_path: Path
) -> None:
    # A new table: ids of the default scheme, named in silver's commit.
    (tmp_path / "fresh").mkdir(), (tmp_path / "old").mkdir()
    fresh = Lake(spark, tmp_path / "fresh")
    write_lines(fresh.raw / "2018-10-01-events.json", line())
    fresh.run()
    marker = storage.commit_metadata(spark, fresh.paths["silver"], silver.MARKER_KEY)
    assert marker[silver.ID_SCHEME] == rules.XXHASH64_X2
    assert [len(r[0]) for r in fresh.table("silver").select("event_id").collect()] == [32]

    # A table written before schemes were named: SHA-256 ids, a marker without the name.
    old = Lake(spark, tmp_path / "old")
    write_lines(old.raw / "2018-10-01-events.json", line())
    bronze.ingest(spark, str(old.raw), old.paths["bronze"], EVENTS)
    until = old.table("bronze").agg(F.max(F.unix_micros("ingested_at"))).first()[0]
    judged = rules.judge(old.table("bronze"), SOURCE, rules.SHA256_JSON).select(*COLUMNS)
    marker = {silver.MARKER_KEY: {"bronze_until_us": until, "bronze_version": 0}}
    storage.append(judged, old.paths["silver"], silver.PARTITION_COLUMNS, marker)
    assert len(old.table("silver").first()["event_id"]) == 64

    # Colin's event sent again with a new one: the old scheme still finds him in silver.
    write_lines(old.raw / "2018-10-02-events.json", line(), line(ts=1538352120000))
    _, s = old.run()

    assert (s.silver_inserted, s.duplicates_removed) == (1, 1)
    ids = [r[0] for r in old.table("silver").select("event_id").collect()]
    assert sorted(map(len, ids)) == [64, 64] and len(set(ids)) == 2
    marker = storage.commit_metadata(spark, old.paths["silver"], silver.MARKER_KEY)
    assert marker[silver.ID_SCHEME] == rules.SHA256_JSON

    # A scheme this lakeml does not know (a newer one's table): an error, nothing written.
    unknown = {silver.MARKER_KEY: {**marker, silver.ID_SCHEME: "blake3"}}
    nothing = judged.limit(0)  # a commit with the marker alone
    storage.append_once(nothing, old.paths["silver"], "test", 1, silver.PARTITION_COLUMNS, unknown)
    write_lines(old.raw / "2018-10-03-events.json", line(ts=1538352130000))
    versions = old.versions()
    with pytest.raises(LakemlError, match="scheme 'blake3', which this lakeml does not know"):
        old.run()
    assert old.versions()["silver"] == versions["silver"]
