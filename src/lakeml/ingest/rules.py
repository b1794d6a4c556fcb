"""The rules a raw event line must pass to enter silver, and the parse they judge.

`parse_events` reads each line's fields as text and types them; `assign_rule` names the
first rule a line breaks, in the documented order (null: the line is a valid event).
"""

from __future__ import annotations

from datetime import date
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeml.core.config import SourceConfig

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
EPOCH = date(1970, 1, 1)

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


def day_start_ms(day: str) -> int:
    """An ISO date at 00:00 UTC as epoch milliseconds."""
    return (date.fromisoformat(day) - EPOCH).days * MS_PER_DAY


def assign_rule(parsed: DataFrame, source: SourceConfig | None = None) -> DataFrame:
    """Add `rule`: the first rule a row breaks, in the documented order; null when valid.

    The time rules use `source` (default: the config's defaults): an event before
    `min_event_date` (e.g. ts written in seconds, which reads as January 1970) or later
    than its own ingestion plus `clock_skew_minutes` cannot be placed in time; nor can a
    registration before `min_registration_date` (in seconds while ts is in milliseconds),
    which would make the account decades old.
    """
    source = source or SourceConfig()
    raw, event = F.col("raw"), F.col("event")
    # Bytes that are not UTF-8 would read as U+FFFD in every field: the line goes to
    # quarantine, which keeps its bytes as they arrived (Spark's strings carry them as is).
    checks: list[tuple[Column, str]] = [
        (~F.is_valid_utf8("value"), "invalid_utf8"),
        (~F.col("json_ok"), "malformed_json"),
    ]
    checks += [(raw[name].isNull(), f"missing_field:{name}") for name in REQUIRED_FIELDS]
    checks += [
        (raw[name].isNotNull() & event[name].isNull(), f"wrong_type:{name}")
        for name in TYPED_FIELDS
    ]
    latest_ms = F.unix_millis(F.col("ingested_at")) + F.lit(source.clock_skew_minutes * 60_000)
    before_registration = event["registration"].isNotNull() & (event["ts"] < event["registration"])
    checks += [
        (event["ts"] < F.lit(day_start_ms(source.min_event_date)), "ts_too_early"),
        (event["ts"] > latest_ms, "ts_in_future"),
        (
            event["registration"] < F.lit(day_start_ms(source.min_registration_date)),
            "registration_too_early",
        ),
        (F.trim(event["userId"]) == "", "missing_user_id"),
        (event["length"] < 0, "negative_length"),
        (before_registration, "event_before_registration"),
    ]
    first, *rest = checks
    rule = reduce(lambda acc, check: acc.when(*check), rest, F.when(*first))
    return parsed.select("*", rule.alias("rule"))
