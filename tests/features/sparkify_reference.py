"""The hand-written Sparkify features and labels lakeml computed before they became
declarative (`conf/presets/sparkify.yaml`), kept verbatim as the oracle the preset is
compared with (tests/features/test_sparkify_preset.py). Not used by lakeml itself.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakeml.core.errors import LakemlError
from lakeml.features.snapshots import labelled_dates, snapshot_frame

CANCELLATION = "Cancellation Confirmation"


def user_lifecycle(silver: DataFrame) -> DataFrame:
    """Per user: first event day and first cancellation day (null if never cancelled)."""
    is_cancellation = F.col("page") == CANCELLATION
    return silver.groupBy("user_id").agg(
        F.min("event_date").alias("first_event_date"),
        F.min(F.when(is_cancellation, F.col("event_date"))).alias("cancellation_date"),
    )


def population(lifecycle: DataFrame, snapshots: DataFrame) -> DataFrame:
    """(user_id, snapshot_date) for users active before S who had not cancelled before S.

    The lifecycle columns ride along (labels need `cancellation_date`).
    """
    s = F.col("snapshot_date")
    seen_before = F.col("first_event_date") < s
    not_churned_yet = F.col("cancellation_date").isNull() | (F.col("cancellation_date") >= s)
    return lifecycle.join(F.broadcast(snapshots), seen_before & not_churned_yet, "inner").select(
        F.col("user_id"),
        F.col("snapshot_date"),
        F.col("first_event_date"),
        F.col("cancellation_date"),
    )


KEYS = ("user_id", "snapshot_date")
SONG = "NextSong"
# Feature prefix -> page whose visits it counts, per window and in total.
PAGE_COUNTS = {
    "thumbs_up": "Thumbs Up",
    "thumbs_down": "Thumbs Down",
    "playlist_adds": "Add to Playlist",
    "friends_added": "Add Friend",
    "adverts": "Roll Advert",
    "errors": "Error",
    "help_visits": "Help",
    "downgrade_visits": "Downgrade",
    "settings_visits": "Settings",
}
# Counted over all history only.
ACCOUNT_COUNTS = {"upgrades": "Submit Upgrade", "downgrades": "Submit Downgrade"}
COUNTED = {**PAGE_COUNTS, **ACCOUNT_COUNTS}
RATE_PREFIXES = ("thumbs_up", "thumbs_down", "adverts")
CATEGORICAL = ("gender", "state", "platform")
# Trends compare the last 7 days with the 21 before them (days 8..28 before S), whatever
# the configured windows are.
TREND_RECENT_DAYS, TREND_BASE_DAYS = 7, 28
REQUIRED_COLUMNS = (
    "user_id",
    "session_id",
    "item_in_session",
    "ts",
    "event_date",
    "page",
    "level",
    "artist",
    "length",
    "gender",
    "state",
    "platform",
    "registration",
)
TOTAL = "total"
# Latest known values before S: account state and the categorical features.
LATEST = ("level", "registration", *CATEGORICAL)


def build_features(silver: DataFrame, snapshot_dates: list[date], windows: list[int]) -> DataFrame:
    """One row per (user_id, snapshot_date) in the snapshot population; see the module doc.

    Window W covers `event_date` in `[S - W, S - 1]`; the `_total` variant every event before S.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in silver.columns]
    if missing:
        raise LakemlError(
            f"silver events lack column(s) {', '.join(missing)} that features need; "
            "rebuild silver with `lakeml features --full-refresh`"
        )
    windows = sorted(set(windows))
    spans = sorted(set(windows) | {TREND_RECENT_DAYS, TREND_BASE_DAYS})
    snapshots = snapshot_frame(silver.sparkSession, snapshot_dates)
    values = _user_day_values(silver)
    by_day = _snapshot_day_sums(_user_days(values), snapshots, spans)
    latest = _latest(values, snapshots)
    by_key = _snapshot_key_counts(_user_keys(silver), snapshots, spans)
    joined = (
        population(user_lifecycle(silver), snapshots)
        # (user, S) is unique on every side: each is grouped by it.
        .join(by_day, on=list(KEYS), how="inner")
        .join(latest, on=list(KEYS), how="inner")
        # Every event has a session, but a left join keeps a user even if one had none.
        .join(by_key, on=list(KEYS), how="left")
    )
    return joined.select(*_output_columns(windows))


def _user_day_values(silver: DataFrame) -> DataFrame:
    """Per (user, day, combination of latest-value columns): counts and when last seen.

    Grouping by the values (about one combination per user and day) keeps this a hash
    aggregation: a string-valued aggregate such as max_by would force a sort of all events.
    """
    page = F.col("page")
    is_song = page == SONG
    return silver.groupBy("user_id", "event_date", *LATEST).agg(
        F.count(F.when(is_song, 1)).alias("songs"),
        # Whole milliseconds summed as longs: sums of doubles depend on the order Spark adds
        # them in, and the same data must give the same features on any cluster layout.
        F.coalesce(
            F.sum(F.when(is_song, F.round(F.col("length") * 1000).cast("long"))), F.lit(0)
        ).alias("listen_ms"),
        *[F.count(F.when(page == p, 1)).alias(name) for name, p in COUNTED.items()],
        F.max("ts").alias("last_ts"),
    )


def _user_days(values: DataFrame) -> DataFrame:
    """Per (user, day): song and page counts and listening time."""
    return values.groupBy("user_id", "event_date").agg(
        *[F.sum(c).alias(c) for c in ("songs", "listen_ms", *COUNTED)]
    )


def _user_keys(silver: DataFrame) -> DataFrame:
    """Distinct (user, kind, key, day) for sessions and artists, with the next day that key
    was seen again (null if never): what the distinct-count features need."""
    # One row per event and kind, from a single read of silver; a null key is dropped.
    keys = F.array(
        F.struct(F.lit("session").alias("kind"), F.col("session_id").cast("string").alias("key")),
        F.struct(
            F.lit("artist").alias("kind"),
            F.when(F.col("page") == SONG, F.col("artist")).alias("key"),
        ),
    )
    by_key = Window.partitionBy("user_id", "kind", "key").orderBy("event_date")
    return (
        silver.select(F.col("user_id"), F.col("event_date"), F.inline(keys))
        .where(F.col("key").isNotNull())
        .distinct()
        .select(
            F.col("user_id"),
            F.col("kind"),
            F.col("event_date"),
            F.lead("event_date").over(by_key).alias("next_day"),
        )
    )


def _before(snapshots: DataFrame) -> tuple[DataFrame, Column]:
    """The snapshots to broadcast and the point-in-time join condition."""
    return F.broadcast(snapshots), F.col("event_date") < F.col("snapshot_date")


def _in_span(days: int) -> Column:
    """The event day is in the `days`-day window before S (the join already has day < S)."""
    return F.col("event_date") >= F.date_sub(F.col("snapshot_date"), days)


def _snapshot_day_sums(days: DataFrame, snapshots: DataFrame, spans: list[int]) -> DataFrame:
    """Per (user, S): windowed and total sums of the daily counts, last active day."""
    snaps, before = _before(snapshots)
    summed = ("songs", "listen_ms", *PAGE_COUNTS)
    windowed = [
        F.sum(F.when(_in_span(n), F.col(c)).otherwise(0)).alias(f"{c}__{n}")
        for n in spans
        for c in summed
    ] + [F.count(F.when(_in_span(n), 1)).alias(f"active_days__{n}") for n in spans]
    totals = [F.sum(c).alias(f"{c}__{TOTAL}") for c in (*summed, *ACCOUNT_COUNTS)]
    return (
        days.join(snaps, before, "inner")
        .groupBy(*KEYS)
        .agg(
            *windowed,
            *totals,
            F.count(F.lit(1)).alias(f"active_days__{TOTAL}"),
            F.max("event_date").alias("last_event_date"),
        )
    )


def _latest(values: DataFrame, snapshots: DataFrame) -> DataFrame:
    """Per (user, S): the latest non-null level, registration and categoricals before S."""
    snaps, before = _before(snapshots)
    return (
        values.join(snaps, before, "inner")
        .groupBy(*KEYS)
        # max_by skips rows whose ordering is null, so a missing value never wins.
        .agg(
            *[F.max_by(c, F.when(F.col(c).isNotNull(), F.col("last_ts"))).alias(c) for c in LATEST]
        )
    )


def _snapshot_key_counts(keys: DataFrame, snapshots: DataFrame, spans: list[int]) -> DataFrame:
    """Per (user, S): sessions and distinct artists with any event in each window.

    Each key row joins the snapshots for which its day is the key's last day before S
    (`day < S <= next_day`), so every (key, S) pair appears once and a key is active in a
    window iff that day is in the window: one aggregation, no count-distinct per window.
    """
    snaps, before = _before(snapshots)
    s = F.col("snapshot_date")
    last_before_s = before & (F.col("next_day").isNull() | (F.col("next_day") >= s))
    names = {"session": "sessions", "artist": "distinct_artists"}
    counts = [
        F.count(F.when((F.col("kind") == kind) & _in_span(n), 1)).alias(f"{name}__{n}")
        for kind, name in names.items()
        for n in spans
    ] + [
        F.count(F.when(F.col("kind") == kind, 1)).alias(f"{name}__{TOTAL}")
        for kind, name in names.items()
    ]
    return keys.join(snaps, last_before_s, "inner").groupBy(*KEYS).agg(*counts)


def _ratio(numerator: Column, denominator: Column) -> Column:
    """numerator / denominator as a double, 0 when the denominator is 0."""
    return F.when(denominator > 0, numerator / denominator).otherwise(F.lit(0.0))


def _trend(recent: Column, last_28: Column) -> Column:
    """(recent 7 days + 1) / (mean per 7 days over days 8..28 before S + 1)."""
    return (recent + 1) / ((last_28 - recent) / 3 + 1)


def _output_columns(windows: list[int]) -> list[Column]:
    """The output schema: keys, activity, page counts, rates, account, trend, categorical."""

    def n(name: str, span: int | str) -> Column:
        # Key counts come from a left join: no row means none.
        return F.coalesce(F.col(f"{name}__{span}"), F.lit(0)).cast("long")

    def suffix(span: int | str) -> str:
        return TOTAL if span == TOTAL else f"{span}d"

    spans: list[int | str] = [*windows, TOTAL]
    activity = {
        "sessions": lambda s: n("sessions", s),
        "songs": lambda s: n("songs", s),
        "listen_minutes": lambda s: (F.col(f"listen_ms__{s}") / 60000).cast("double"),
        "distinct_artists": lambda s: n("distinct_artists", s),
        "songs_per_session": lambda s: _ratio(n("songs", s), n("sessions", s)),
        "active_days": lambda s: n("active_days", s),
    }
    largest = windows[-1]
    s = F.col("snapshot_date")
    r, b = TREND_RECENT_DAYS, TREND_BASE_DAYS
    return [
        F.col("user_id"),
        F.col("snapshot_date"),
        *[
            make(sp).alias(f"{name}_{suffix(sp)}")
            for name, make in activity.items()
            for sp in spans
        ],
        *[n(name, sp).alias(f"{name}_{suffix(sp)}") for name in PAGE_COUNTS for sp in spans],
        *[
            _ratio(n(name, sp), n("songs", sp)).alias(f"{name}_per_song_{suffix(sp)}")
            for name in RATE_PREFIXES
            for sp in (largest, TOTAL)
        ],
        F.coalesce(F.col("level") == "paid", F.lit(False)).cast("int").alias("is_paid"),
        n("upgrades", TOTAL).alias("upgrades_total"),
        n("downgrades", TOTAL).alias("downgrades_total"),
        F.datediff(s, F.to_date("registration")).cast("long").alias("days_since_registration"),
        F.datediff(s, F.col("last_event_date")).cast("long").alias("days_since_last_activity"),
        _trend(n("songs", r), n("songs", b)).alias("songs_trend"),
        _trend(n("sessions", r), n("sessions", b)).alias("sessions_trend"),
        _trend(F.col(f"listen_ms__{r}") / 60000, F.col(f"listen_ms__{b}") / 60000).alias(
            "listen_minutes_trend"
        ),
        _trend(n("active_days", r), n("active_days", b)).alias("active_days_trend"),
        *[F.col(c).cast("string").alias(c) for c in CATEGORICAL],
    ]


def build_labels(
    silver: DataFrame, snapshot_dates: list[date], horizon_days: int, last_day: date
) -> DataFrame:
    """(user_id, snapshot_date, churned 0/1) for snapshots fully observed by `last_day`.

    `last_day` is the last complete day of events in silver.
    """
    observed = labelled_dates(snapshot_dates, horizon_days, last_day)
    snapshots = snapshot_frame(silver.sparkSession, observed)
    s = F.col("snapshot_date")
    # The population has no cancellation before S, so the first one is the one that counts.
    cancels_in_horizon = F.col("cancellation_date").between(s, F.date_add(s, horizon_days - 1))
    return population(user_lifecycle(silver), snapshots).select(
        F.col("user_id"),
        F.col("snapshot_date"),
        F.coalesce(cancels_in_horizon, F.lit(False)).cast("int").alias("churned"),
    )
