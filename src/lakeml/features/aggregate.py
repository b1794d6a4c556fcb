"""Point-in-time features per (entity, snapshot S) from events before S only, as the config
declares them (`features.aggregations`, see `lakeml.core.event_spec`).

One plan serves every feature, window and snapshot: events are first reduced to one row per
(entity, day, combination of latest-value columns) with each feature's daily part (a count,
a whole-number sum, a min, ...), and to distinct (entity, feature, value, day) rows for the
distinct counts. Those small aggregates join the few snapshot dates on `event_date < S`, and
every window is a conditional aggregate over the joined rows: no pass over raw events per
feature, window or snapshot, and built-in Spark functions only.
"""

from __future__ import annotations

from datetime import date
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakeml.core.errors import LakemlError
from lakeml.core.event_spec import WINDOWED, Aggregation
from lakeml.features.snapshots import SNAPSHOT, LogColumns, population, snapshot_frame

TOTAL = "total"
# Window kinds whose value is a whole count: 0 when no row holds any.
COUNTS = ("count", "distinct", "active_days")


def build_features(
    silver: DataFrame,
    snapshot_dates: list[date],
    windows: list[int],
    aggregations: list[Aggregation],
    log: LogColumns,
) -> DataFrame:
    """One row per (entity, snapshot_date) in the snapshot population, one column per feature
    and window. Window W covers `event_date` in `[S - W, S - 1]`; `_total` every day before S.
    """
    aggs = list(aggregations)
    needed = {log.entity, "event_date", "ts", *([log.event_type] if log.event_type else [])}
    for a in aggs:
        needed |= {a.column, *a.where} - {""}
    missing = sorted(needed - set(silver.columns))
    if missing:
        raise LakemlError(
            f"silver events lack column(s) {', '.join(missing)} that features need; "
            "rebuild silver with `lakeml features --full-refresh`"
        )
    spans = _spans(aggs, windows)
    keys = (log.entity, SNAPSHOT)
    snapshots = snapshot_frame(silver.sparkSession, snapshot_dates)
    latest_cols = sorted({a.column for a in aggs if _latest_column(a)})
    values = _day_values(silver, aggs, log.entity, latest_cols)
    by_day = _snapshot_day_aggregates(_days(values, aggs, log.entity), snapshots, aggs, spans, keys)
    joined = population(silver, snapshots, log).join(by_day, on=list(keys), how="inner")
    if latest_cols:
        latest = _latest(values, snapshots, latest_cols, keys)
        joined = joined.join(latest, on=list(keys), how="inner")
    distinct = [a for a in aggs if a.kind == "distinct"]
    if distinct:
        found = _keys(silver, distinct, log.entity)
        counts = _snapshot_key_counts(found, snapshots, distinct, spans, keys)
        # An entity with no value of a distinct column before S has none: a left join.
        joined = joined.join(counts, on=list(keys), how="left")
    return joined.select(
        F.col(log.entity), F.col(SNAPSHOT), *_outputs(aggs, windows, {a.name: a for a in aggs})
    )


def _spans(aggs: list[Aggregation], windows: list[int]) -> list[int]:
    """Every window some output needs: declared windows and trends' recent and base days."""
    days = set(windows)
    for a in aggs:
        if a.kind in WINDOWED and a.windows is not None:
            days |= set(a.windows)
        if a.kind == "trend":
            days |= {a.recent, a.base}
    return sorted(days)


def _latest_column(a: Aggregation) -> bool:
    return a.kind == "latest" or (a.kind == "days_since" and bool(a.column))


def _matches(a: Aggregation) -> Column:
    """The events the aggregation reads: every `where` column holds one of its values."""
    tests = [F.col(c).cast("string").isin(list(v)) for c, v in a.where.items()]
    return reduce(lambda x, y: x & y, tests, F.lit(True))


def _whole(a: Aggregation) -> Column:
    """A value as a whole number of 10^-decimals units: sums of these do not depend on the
    order Spark adds them in."""
    return F.round(F.col(a.column) * (10**a.decimals)).cast("long")


def _day_parts(a: Aggregation) -> list[tuple[str, Column, str]]:
    """The aggregation's daily part(s) per (entity, day, latest values): each one's column
    name, aggregate, and how the parts of one day combine (sum, min or max)."""
    hit, n = _matches(a), a.name
    whole = F.coalesce(F.sum(F.when(hit, _whole(a))), F.lit(0)) if a.column else None
    if a.kind in ("count", "active_days"):
        return [(n, F.count(F.when(hit, 1)), "sum")]
    if a.kind == "sum":
        return [(n, whole, "sum")]
    if a.kind == "mean":
        return [
            (f"{n}__sum", whole, "sum"),
            (f"{n}__n", F.count(F.when(hit, F.col(a.column))), "sum"),
        ]
    if a.kind in ("min", "max"):
        agg = F.min if a.kind == "min" else F.max
        return [(n, agg(F.when(hit, F.col(a.column).cast("double"))), a.kind)]
    if a.kind == "days_since" and not a.column:
        return [(n, F.max(F.when(hit, F.col("event_date"))), "max")]
    return []


def _day_values(
    silver: DataFrame, aggs: list[Aggregation], entity: str, latest_cols: list[str]
) -> DataFrame:
    """Per (entity, day, combination of latest-value columns): daily parts and when last seen.

    Grouping by the values (about one combination per entity and day) keeps this a hash
    aggregation: a string-valued aggregate such as max_by would force a sort of all events.
    """
    parts = [c.alias(name) for a in aggs for name, c, _ in _day_parts(a)]
    return silver.groupBy(entity, "event_date", *latest_cols).agg(
        *parts, F.max("ts").alias("__last_ts")
    )


COMBINE = {"sum": F.sum, "min": F.min, "max": F.max}


def _days(values: DataFrame, aggs: list[Aggregation], entity: str) -> DataFrame:
    """Per (entity, day): the daily parts combined over the latest-value combinations."""
    combine = [COMBINE[how](name).alias(name) for a in aggs for name, _, how in _day_parts(a)]
    return values.groupBy(entity, "event_date").agg(*combine)


def _in_span(days: int) -> Column:
    """The event day is in the `days`-day window before S (the join already has day < S)."""
    return F.col("event_date") >= F.date_sub(F.col(SNAPSHOT), days)


def _window_parts(a: Aggregation, spans: list[int]) -> list[Column]:
    """Per (entity, S): the aggregation's parts over each span and all history."""
    n = a.name
    if a.kind in ("count", "sum"):
        return [
            F.sum(F.when(_in_span(d), F.col(n)).otherwise(0)).alias(f"{n}__{d}") for d in spans
        ] + [F.sum(n).alias(f"{n}__{TOTAL}")]
    if a.kind == "mean":
        out = []
        for part in ("sum", "n"):
            c = f"{n}__{part}"
            out += [
                F.sum(F.when(_in_span(d), F.col(c)).otherwise(0)).alias(f"{c}__{d}") for d in spans
            ]
            out.append(F.sum(c).alias(f"{c}__{TOTAL}"))
        return out
    if a.kind in ("min", "max"):
        agg = F.min if a.kind == "min" else F.max
        return [agg(F.when(_in_span(d), F.col(n))).alias(f"{n}__{d}") for d in spans] + [
            agg(n).alias(f"{n}__{TOTAL}")
        ]
    if a.kind == "active_days":
        return [
            F.count(F.when(_in_span(d) & (F.col(n) > 0), 1)).alias(f"{n}__{d}") for d in spans
        ] + [F.count(F.when(F.col(n) > 0, 1)).alias(f"{n}__{TOTAL}")]
    if a.kind == "days_since" and not a.column:
        return [F.max(n).alias(n)]
    return []


def _snapshot_day_aggregates(
    days: DataFrame, snapshots: DataFrame, aggs: list[Aggregation], spans: list[int], keys: tuple
) -> DataFrame:
    """Per (entity, S): every windowed and all-history part, from days before S."""
    parts = [p for a in aggs for p in _window_parts(a, spans)]
    before = F.col("event_date") < F.col(SNAPSHOT)
    return days.join(F.broadcast(snapshots), before, "inner").groupBy(*keys).agg(*parts)


def _latest(values: DataFrame, snapshots: DataFrame, columns: list[str], keys: tuple) -> DataFrame:
    """Per (entity, S): the latest non-null value of each column before S."""
    before = F.col("event_date") < F.col(SNAPSHOT)
    return (
        values.join(F.broadcast(snapshots), before, "inner")
        .groupBy(*keys)
        # max_by skips rows whose ordering is null, so a missing value never wins.
        .agg(
            *[
                F.max_by(c, F.when(F.col(c).isNotNull(), F.col("__last_ts"))).alias(c)
                for c in columns
            ]
        )
    )


def _keys(silver: DataFrame, distinct: list[Aggregation], entity: str) -> DataFrame:
    """Distinct (entity, feature, value, day) for the distinct counts, with the next day that
    value was seen again (null if never)."""
    # One row per event and distinct feature, from a single read of silver; nulls dropped.
    pairs = F.array(
        *[
            F.struct(
                F.lit(a.name).alias("kind"),
                F.when(_matches(a), F.col(a.column)).cast("string").alias("key"),
            )
            for a in distinct
        ]
    )
    by_key = Window.partitionBy(entity, "kind", "key").orderBy("event_date")
    return (
        silver.select(F.col(entity), F.col("event_date"), F.inline(pairs))
        .where(F.col("key").isNotNull())
        .distinct()
        .select(
            F.col(entity),
            F.col("kind"),
            F.col("event_date"),
            F.lead("event_date").over(by_key).alias("next_day"),
        )
    )


def _snapshot_key_counts(
    keys_df: DataFrame,
    snapshots: DataFrame,
    distinct: list[Aggregation],
    spans: list[int],
    keys: tuple,
) -> DataFrame:
    """Per (entity, S): distinct values with any event in each window.

    Each value's row joins the snapshots for which its day is the value's last day before S
    (`day < S <= next_day`), so every (value, S) pair appears once and a value counts in a
    window iff that day is in it: one aggregation, no count-distinct per window.
    """
    s = F.col(SNAPSHOT)
    last_before_s = (F.col("event_date") < s) & (
        F.col("next_day").isNull() | (F.col("next_day") >= s)
    )
    kind = F.col("kind")
    counts = [
        F.count(F.when((kind == a.name) & _in_span(d), 1)).alias(f"{a.name}__{d}")
        for a in distinct
        for d in spans
    ] + [F.count(F.when(kind == a.name, 1)).alias(f"{a.name}__{TOTAL}") for a in distinct]
    return keys_df.join(F.broadcast(snapshots), last_before_s, "inner").groupBy(*keys).agg(*counts)


def _ratio(numerator: Column, denominator: Column) -> Column:
    """numerator / denominator as a double, 0 when the denominator is 0."""
    return F.when(denominator > 0, numerator / denominator).otherwise(F.lit(0.0))


def _suffix(span: int | str) -> str:
    return TOTAL if span == TOTAL else f"{span}d"


def _outputs(
    aggs: list[Aggregation], windows: list[int], by_name: dict[str, Aggregation]
) -> list[Column]:
    """The declared columns, in the declared order."""

    def value(a: Aggregation, span: int | str) -> Column:
        n = a.name
        if a.kind in COUNTS:
            return F.coalesce(F.col(f"{n}__{span}"), F.lit(0)).cast("long")
        if a.kind == "sum":
            return (F.col(f"{n}__{span}") / (10**a.decimals * a.scale)).cast("double")
        if a.kind == "mean":
            total, count = F.col(f"{n}__sum__{span}"), F.col(f"{n}__n__{span}")
            mean = total / (10**a.decimals * a.scale) / count
            return F.when(count > 0, mean).cast("double")
        if a.kind in ("min", "max"):
            return (F.col(f"{n}__{span}") / a.scale).cast("double")
        if a.kind == "ratio":
            return _ratio(value(by_name[a.numerator], span), value(by_name[a.denominator], span))
        raise AssertionError(a.kind)

    s = F.col(SNAPSHOT)
    out: list[Column] = []
    for a in aggs:
        if a.kind in WINDOWED:
            own = sorted(set(windows if a.windows is None else a.windows))
            spans: list[int | str] = [*own, *([TOTAL] if a.total else [])]
            out += [value(a, sp).alias(f"{a.name}_{_suffix(sp)}") for sp in spans]
        elif a.kind == "latest":
            c = F.col(a.column)
            if a.equals:
                c = F.coalesce(c.cast("string") == a.equals, F.lit(False)).cast("int")
            out.append(c.alias(a.name))
        elif a.kind == "days_since":
            since = F.to_date(a.column) if a.column else F.col(a.name)
            out.append(F.datediff(s, since).cast("long").alias(a.name))
        elif a.kind == "trend":
            of = by_name[a.of]
            recent, base = value(of, a.recent), value(of, a.base)
            per = (a.base - a.recent) / a.recent
            out.append(((recent + 1) / ((base - recent) / per + 1)).alias(a.name))
    return out
