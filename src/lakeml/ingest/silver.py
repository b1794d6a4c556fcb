"""Silver: parsed, validated, de-duplicated events, plus a quarantine of rejected raw lines.

Each bronze row ends in exactly one place: silver (a new valid event), quarantine (a line
that broke a rule, with the first rule it broke) or the duplicate count (a valid event
already in silver). The pure transforms below do the judging; `update` streams the bronze
rows not yet processed through them and writes the results exactly once.
"""

from __future__ import annotations

import threading
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeml.core import storage
from lakeml.core.errors import LakemlError

# The eventsim fields in a fixed order: the order of the struct the event_id is hashed from.
EVENT_FIELDS: dict[str, T.DataType] = {
    "artist": T.StringType(),
    "auth": T.StringType(),
    "firstName": T.StringType(),
    "gender": T.StringType(),
    "itemInSession": T.LongType(),
    "lastName": T.StringType(),
    "length": T.DoubleType(),
    "level": T.StringType(),
    "location": T.StringType(),
    "method": T.StringType(),
    "page": T.StringType(),
    "registration": T.DoubleType(),
    "sessionId": T.LongType(),
    "song": T.StringType(),
    "status": T.IntegerType(),
    "ts": T.LongType(),
    "userAgent": T.StringType(),
    "userId": T.StringType(),
}
REQUIRED_FIELDS = ("ts", "userId", "sessionId", "itemInSession", "page", "auth", "level")
# Non-string fields, in the order their type is checked (required ones first).
TYPED_FIELDS = ("ts", "sessionId", "itemInSession", "length", "registration", "status")
# Epoch milliseconds a timestamp can hold: 0001-01-01 to 9999-12-31T23:59:59.999 UTC.
# Outside this range timestamp_millis would overflow, so such a value is a wrong type.
EPOCH_MS_FIELDS = ("ts", "registration")
MIN_EPOCH_MS, MAX_EPOCH_MS = -62_135_596_800_000, 253_402_300_799_999
MS_PER_DAY = 86_400_000

SILVER_SCHEMA = T.StructType(
    [
        T.StructField("event_id", T.StringType()),
        T.StructField("user_id", T.StringType()),
        T.StructField("session_id", T.LongType()),
        T.StructField("item_in_session", T.LongType()),
        T.StructField("ts", T.TimestampType()),
        T.StructField("event_date", T.DateType()),
        T.StructField("page", T.StringType()),
        T.StructField("auth", T.StringType()),
        T.StructField("level", T.StringType()),
        T.StructField("artist", T.StringType()),
        T.StructField("song", T.StringType()),
        T.StructField("length", T.DoubleType()),
        T.StructField("gender", T.StringType()),
        T.StructField("first_name", T.StringType()),
        T.StructField("last_name", T.StringType()),
        T.StructField("location", T.StringType()),
        T.StructField("state", T.StringType()),
        T.StructField("user_agent", T.StringType()),
        T.StructField("platform", T.StringType()),
        T.StructField("registration", T.TimestampType()),
        T.StructField("method", T.StringType()),
        T.StructField("status", T.IntegerType()),
        T.StructField("source_file", T.StringType()),
        T.StructField("ingested_at", T.TimestampType()),
    ]
)
QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("value", T.StringType()),
        T.StructField("source_file", T.StringType()),
        T.StructField("ingested_at", T.TimestampType()),
        T.StructField("rule", T.StringType()),
        T.StructField("quarantined_at", T.TimestampType()),
    ]
)
PARTITION_COLUMNS = ["event_date"]


# Every field read as text: a JSON number keeps its digits, so types are checked afterwards.
CORRUPT_COLUMN = "_corrupt_record"
RAW_SCHEMA = T.StructType(
    [T.StructField(name, T.StringType()) for name in EVENT_FIELDS]
    + [T.StructField(CORRUPT_COLUMN, T.StringType())]
)
JSON_OPTIONS = {
    "mode": "PERMISSIVE",
    "columnNameOfCorruptRecord": CORRUPT_COLUMN,
    # Strict JSON: Spark would otherwise accept 'single quotes' and NaN.
    "allowSingleQuotes": "false",
    "allowNonNumericNumbers": "false",
}


def parse_events(bronze_rows: DataFrame) -> DataFrame:
    """Bronze rows -> `json_ok`, `raw` (each field's text) and `event` (each field typed).

    `from_json` with a corrupt-record column flags anything that is not one JSON object:
    truncated lines, arrays, scalars, blank lines (strict options: no single quotes, no
    NaN). It was chosen over `try_parse_json` + variant casts, which flag the same lines
    (and also reject duplicate keys, where from_json keeps the last), because it parses
    this data about 30% faster. Each field is read as text and typed with `try_cast`, so
    a value of the wrong type shows as raw-present-but-typed-null instead of silently
    becoming null. `raw` and `event` mean nothing when `json_ok` is false.
    """
    fields = F.from_json("value", RAW_SCHEMA, JSON_OPTIONS)
    parsed = bronze_rows.select("value", "source_file", "ingested_at", fields.alias("fields"))
    raw = {name: F.col("fields")[name] for name in EVENT_FIELDS}
    typed = {name: _typed(raw[name], name, dtype) for name, dtype in EVENT_FIELDS.items()}
    json_ok = F.col("fields").isNotNull() & F.col("fields")[CORRUPT_COLUMN].isNull()
    return parsed.select(
        "value",
        "source_file",
        "ingested_at",
        json_ok.alias("json_ok"),
        F.struct(*[raw[name].alias(name) for name in EVENT_FIELDS]).alias("raw"),
        F.struct(*[typed[name].alias(name) for name in EVENT_FIELDS]).alias("event"),
    )


def _typed(text: Column, name: str, dtype: T.DataType) -> Column:
    if isinstance(dtype, T.StringType):
        return text
    value = text.try_cast(dtype)
    if name in EPOCH_MS_FIELDS:
        return F.when(value.between(MIN_EPOCH_MS, MAX_EPOCH_MS), value)
    return value


def assign_rule(parsed: DataFrame) -> DataFrame:
    """Add `rule`: the first rule a row breaks, in the documented order; null when valid."""
    raw, event = F.col("raw"), F.col("event")
    checks: list[tuple[Column, str]] = [(~F.col("json_ok"), "malformed_json")]
    checks += [(raw[name].isNull(), f"missing_field:{name}") for name in REQUIRED_FIELDS]
    checks += [
        (raw[name].isNotNull() & event[name].isNull(), f"wrong_type:{name}")
        for name in TYPED_FIELDS
    ]
    before_registration = event["registration"].isNotNull() & (event["ts"] < event["registration"])
    checks += [
        (F.trim(event["userId"]) == "", "missing_user_id"),
        (event["length"] < 0, "negative_length"),
        (before_registration, "event_before_registration"),
    ]
    first, *rest = checks
    rule = reduce(lambda acc, check: acc.when(*check), rest, F.when(*first))
    return parsed.select("*", rule.alias("rule"))


def state_from_location(location: Column) -> Column:
    """ "Bakersfield, CA" -> "CA": the text after the last comma, trimmed; null if none."""
    return F.nullif(F.trim(F.regexp_extract(location, r",([^,]*)$", 1)), F.lit(""))


def platform_from_user_agent(user_agent: Column) -> Column:
    """Coarse platform from a browser user agent; iOS is tested before Mac because iOS
    agents say "like Mac OS X", Android before Linux because Android agents say "Linux"."""
    ua = F.coalesce(user_agent, F.lit(""))
    return (
        F.when(ua.contains("iPhone"), "iPhone")
        .when(ua.contains("iPad"), "iPad")
        .when(ua.contains("Android"), "Android")
        .when(ua.contains("Windows"), "Windows")
        .when(ua.contains("Macintosh") | ua.contains("Mac OS X"), "Mac")
        .when(ua.contains("Linux"), "Linux")
        .otherwise("Other")
    )


def _silver_columns() -> list[Column]:
    event = F.col("event")
    return [
        F.sha2(F.to_json(event), 256).alias("event_id"),
        event["userId"].alias("user_id"),
        event["sessionId"].alias("session_id"),
        event["itemInSession"].alias("item_in_session"),
        F.timestamp_millis(event["ts"]).alias("ts"),
        F.date_from_unix_date(F.floor(event["ts"] / MS_PER_DAY).cast("int")).alias("event_date"),
        event["page"].alias("page"),
        event["auth"].alias("auth"),
        event["level"].alias("level"),
        event["artist"].alias("artist"),
        event["song"].alias("song"),
        event["length"].alias("length"),
        event["gender"].alias("gender"),
        event["firstName"].alias("first_name"),
        event["lastName"].alias("last_name"),
        event["location"].alias("location"),
        state_from_location(event["location"]).alias("state"),
        event["userAgent"].alias("user_agent"),
        platform_from_user_agent(event["userAgent"]).alias("platform"),
        F.timestamp_millis(event["registration"].try_cast("bigint")).alias("registration"),
        event["method"].alias("method"),
        event["status"].alias("status"),
        F.col("source_file"),
        F.col("ingested_at"),
    ]


def to_silver(valid: DataFrame) -> DataFrame:
    """Valid parsed rows (`event` struct, source_file, ingested_at) -> the silver contract.

    `event_id` hashes the typed event struct, so the same event written with other key
    order, spacing or number formatting gets the same id. Times are UTC whatever the
    session time zone: `event_date` comes from whole days since the epoch.
    """
    return valid.select(*_silver_columns())


def to_quarantine(rejected: DataFrame) -> DataFrame:
    """Rows that broke a rule -> the quarantine contract: the raw line and why it failed."""
    return rejected.select(
        "value",
        "source_file",
        "ingested_at",
        "rule",
        F.current_timestamp().alias("quarantined_at"),
    )


def drop_duplicate_events(events: DataFrame, existing_ids: DataFrame | None = None) -> DataFrame:
    """Keep one row per `event_id` (the earliest ingested) and drop ids already in
    `existing_ids` (event_date and event_id of silver), so an event enters silver once.

    An event_id fixes its event_date, so the work is clustered by event_date alone: the
    same shuffle then serves the de-duplication, the anti join and the partitioned write.
    """
    by_day = events.repartition(*PARTITION_COLUMNS)
    earliest_first = Window.partitionBy("event_date", "event_id").orderBy(
        "ingested_at", "source_file"
    )
    ranked = by_day.select("*", F.row_number().over(earliest_first).alias("_rank"))
    unique = ranked.where(F.col("_rank") == 1)
    if existing_ids is not None:
        known = existing_ids.select("event_date", "event_id")
        unique = unique.join(known, on=["event_date", "event_id"], how="left_anti")
    return unique.select(*SILVER_SCHEMA.fieldNames())


def classify(bronze_rows: DataFrame) -> DataFrame:
    """Bronze rows -> `rule`, `value` (kept only when rejected) and the silver columns:
    everything a batch needs after judging each line, in flat columns."""
    judged = assign_rule(parse_events(bronze_rows))
    is_rejected = F.col("rule").isNotNull()
    return judged.select(
        "rule", F.when(is_rejected, F.col("value")).alias("value"), *_silver_columns()
    )


def _process_batch(
    spark: SparkSession,
    batch: DataFrame,
    batch_id: int,
    app_id: str,
    silver_path: str,
    quarantine_path: str,
) -> dict[str, Any]:
    """One micro-batch: judge every line, append the rejected ones to quarantine and the new
    events to silver, and return the batch's counts (the keys `update` returns)."""
    classified = classify(batch).persist()
    try:
        per_rule = (
            classified.groupBy("rule")
            .agg(
                F.count(F.lit(1)).alias("rows"),
                F.min("event_date").alias("first_day"),
                F.max("event_date").alias("last_day"),
            )
            .collect()
        )
        valid = next((r for r in per_rule if r["rule"] is None), None)
        rejected = {r["rule"]: int(r["rows"]) for r in per_rule if r["rule"] is not None}
        if rejected or not storage.exists(spark, quarantine_path):
            quarantine = to_quarantine(classified.where(F.col("rule").isNotNull()))
            storage.append_once(quarantine, quarantine_path, app_id, batch_id)

        existing = None
        if valid is not None and storage.exists(spark, silver_path):
            # An event_id fixes its event_date, so only the batch's dates can hold it.
            existing = storage.read(spark, silver_path).where(
                F.col("event_date").between(valid["first_day"], valid["last_day"])
            )
        fresh = drop_duplicate_events(classified.where(F.col("rule").isNull()), existing)
        # Not cached: this count needs only event_date and event_id, and recomputing them
        # costs less than caching the full rows would.
        inserted = fresh.agg(
            F.count(F.lit(1)).alias("rows"), F.min("event_date").alias("first_day")
        ).first()
        if inserted["rows"] or not storage.exists(spark, silver_path):
            storage.append_once(fresh, silver_path, app_id, batch_id, PARTITION_COLUMNS)
    finally:
        classified.unpersist()

    valid_rows = int(valid["rows"]) if valid is not None else 0
    return {
        "bronze_rows": valid_rows + sum(rejected.values()),
        "silver_inserted": int(inserted["rows"]),
        "quarantined": sum(rejected.values()),
        "duplicates_removed": valid_rows - int(inserted["rows"]),
        "quarantine_by_rule": rejected,
        "min_new_event_date": inserted["first_day"],
    }


def _add_counts(totals: dict[str, Any], batch: dict[str, Any]) -> None:
    for key in ("bronze_rows", "silver_inserted", "quarantined", "duplicates_removed"):
        totals[key] += batch[key]
    for rule, rows in batch["quarantine_by_rule"].items():
        totals["quarantine_by_rule"][rule] = totals["quarantine_by_rule"].get(rule, 0) + rows
    days = [d for d in (totals["min_new_event_date"], batch["min_new_event_date"]) if d]
    totals["min_new_event_date"] = min(days, default=None)


def update(
    spark: SparkSession,
    bronze_path: str,
    silver_path: str,
    quarantine_path: str,
    checkpoint_path: str,
) -> dict[str, Any]:
    """Move bronze rows not yet processed into silver or quarantine, exactly once.

    Returns this run's `bronze_rows`, `silver_inserted`, `quarantined`,
    `duplicates_removed` (the first equals the sum of the other three),
    `quarantine_by_rule` and `min_new_event_date` (earliest event_date inserted, or None).

    A streaming read of bronze (`availableNow`) remembers in the checkpoint which rows were
    processed. Each micro-batch appends with Delta's idempotent `txnAppId`/`txnVersion`, the
    app id being the streaming query's id (kept in the checkpoint; a new checkpoint gets a
    new id, so its restarted batch numbers are not mistaken for batches already written).
    Silver gets an append of the batch's events minus the event_ids already in silver (a
    left anti join on the batch's date range) rather than an insert-only MERGE: the same
    join, but the inserted rows are known, which gives `min_new_event_date` exactly.
    This assumes one writer of silver at a time, as the pipeline runs it.
    """
    if not storage.exists(spark, bronze_path):
        raise LakemlError(f"no bronze table at {bronze_path!r}; run the bronze ingest first")
    totals: dict[str, Any] = {
        "bronze_rows": 0,
        "silver_inserted": 0,
        "quarantined": 0,
        "duplicates_removed": 0,
        "quarantine_by_rule": {},
        "min_new_event_date": None,
    }
    query_id: dict[str, str] = {}
    started = threading.Event()

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        started.wait()  # until query_id is set: batches run on the stream's own thread
        app_id = f"lakeml-silver-{query_id['id']}"
        counts = _process_batch(spark, batch, batch_id, app_id, silver_path, quarantine_path)
        _add_counts(totals, counts)

    query = (
        spark.readStream.format("delta")
        .load(bronze_path)
        .writeStream.foreachBatch(write_batch)
        .option("checkpointLocation", checkpoint_path)
        .trigger(availableNow=True)
        .start()
    )
    query_id["id"] = str(query.id)
    started.set()
    query.awaitTermination()
    return totals
