"""The config that adapts lakeml to an event log: where its records are and what they hold
(`source.events`), the features to compute from them (`features.aggregations`) and what
counts as churn (`features.target`).

Everything here is checked when the config loads, before Spark starts: a feature or rule
that names a column the log does not have, a ratio of a feature not declared, a window
that is not positive. `conf/presets/sparkify.yaml` is the Sparkify (eventsim) log described
this way.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from lakeml.core.config_load import NonEmpty, OptionalDate, Section, Text, rule

# How a field holds a point in time: whole milliseconds or seconds since the epoch, an
# ISO-8601 text (with or without an offset; none means UTC) or a date (YYYY-MM-DD).
TimestampEncoding = Literal["epoch_ms", "epoch_s", "iso8601", "date"]
FieldType = Literal["string", "long", "int", "double", "boolean"]
WINDOWED = ("count", "sum", "mean", "min", "max", "distinct", "active_days", "ratio")
AggregationKind = Literal[
    "count", "sum", "mean", "min", "max", "distinct", "active_days", "ratio",
    "days_since", "latest", "trend",
]  # fmt: skip
Window = Annotated[int, Field(ge=1)]
# A filter value or list of them: `page: NextSong` or `page: [Thumbs Up, Thumbs Down]`.
Values = Annotated[list[Text], BeforeValidator(lambda v: [v] if isinstance(v, (str, int)) else v)]


class EventField(Section):
    """One field of the raw records: its name there, its type, its silver column."""

    KEY = "source.events.fields[]"
    name: NonEmpty
    type: FieldType = Field("string", title="field type")
    # The silver column (default: the field's name).
    column: Text = ""
    required: bool = False
    # The field holds a point in time in this encoding; silver keeps it as a timestamp.
    timestamp: TimestampEncoding | None = Field(None, title="timestamp encoding")

    @property
    def out(self) -> str:
        return self.column or self.name

    @model_validator(mode="after")
    def _encoding_fits_type(self) -> EventField:
        numeric = {"epoch_ms": ("long", "double"), "epoch_s": ("long", "double")}
        text = {"iso8601": ("string",), "date": ("string",)}
        allowed = {**numeric, **text}.get(self.timestamp or "")
        if allowed is not None and self.type not in allowed:
            raise rule(
                "timestamp",
                f"{self.timestamp} needs a field of type {' or '.join(allowed)}, got {self.type}",
            )
        return self


class EventRule(Section):
    """A validation rule: a row breaking it goes to quarantine under `name`. Exactly one
    check: `not_blank`, `allowed` values, `min` / `max` of a number, `after` a date (for a
    timestamp), or `not_before` another timestamp column (when that one is set)."""

    KEY = "source.events.rules[]"
    name: NonEmpty
    column: NonEmpty
    not_blank: bool = False
    allowed: list[Text] | None = None
    min: float | None = None
    max: float | None = None
    after: OptionalDate = ""
    not_before: Text = ""

    @model_validator(mode="after")
    def _one_check(self) -> EventRule:
        checks = [
            self.not_blank, self.allowed is not None, self.min is not None,
            self.max is not None, bool(self.after), bool(self.not_before),
        ]  # fmt: skip
        if sum(checks) != 1:
            raise rule("", "give exactly one of not_blank, allowed, min, max, after, not_before")
        return self


class EventSourceSpec(Section):
    """An event log: one record per event, in files of one `format` under source.path.

    json: one JSON object per line; csv: lines of `fields` in order, a header line first
    (skipped); parquet and delta: rows. Silver holds `event_id`, the `entity` and event time
    (`ts`, `event_date` in UTC), each field's column and the `derived` ones (Spark SQL
    expressions over the field columns), then where and when each row arrived.
    """

    KEY = "source.events"
    format: Literal["json", "csv", "parquet", "delta"] = Field("json", title="event format")
    # A glob the file names must match (e.g. `*-events.json`); empty: every file.
    pattern: Text = ""
    delimiter: NonEmpty = ","
    fields: list[EventField] = Field(min_length=1)
    entity: NonEmpty
    timestamp: NonEmpty
    event_type: Text = ""
    # The columns whose values make two records the same event (empty: every field).
    duplicate_columns: list[Text] = Field(default_factory=list)
    derived: dict[Text, Text] = Field(default_factory=dict)
    rules: list[EventRule] = Field(default_factory=list)

    def field(self, column: str) -> EventField | None:
        return next((f for f in self.fields if f.out == column), None)

    @property
    def columns(self) -> list[str]:
        """Silver's event columns: the fields' (event time first) and the derived ones."""
        return [f.out for f in self.fields] + list(self.derived)

    @model_validator(mode="after")
    def _columns_are_known(self) -> EventSourceSpec:
        names = [f.out for f in self.fields]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise rule("fields", f"two fields write the column(s) {', '.join(twice)}")
        columns = set(self.columns)
        clash = sorted(columns & {"event_id", "event_date", "source_file", "ingested_at"})
        if clash:
            raise rule("fields", f"column(s) {', '.join(clash)} are silver's own; rename them")
        for key in ("entity", "event_type"):
            value = getattr(self, key)
            if value and value not in names:
                raise rule(key, f"{value!r} is not a field column ({', '.join(names)})")
        ts = self.field(self.timestamp)
        if ts is None or ts.timestamp is None:
            raise rule("timestamp", f"{self.timestamp!r} must be a field with a timestamp encoding")
        for i, name in enumerate(self.duplicate_columns):
            if name not in names:
                raise rule(f"duplicate_columns[{i}]", f"{name!r} is not a field column")
        for i, r in enumerate(self.rules):
            for key in ("column", "not_before"):
                value = getattr(r, key)
                if value and value not in columns:
                    raise rule(f"rules[{i}].{key}", f"{value!r} is not a column of the log")
        return self


class Aggregation(Section):
    """A feature per (entity, snapshot), from events strictly before the snapshot.

    Windowed kinds give one column per window (`<name>_<w>d`) and one over all history
    (`<name>_total`): count (events, optionally `where` columns hold given values), sum /
    mean / min / max of a number `column` (divided by `scale`), distinct values of
    `column`, active days, ratio of two windowed features (`numerator` / `denominator`, 0
    when the denominator is 0). Single-column kinds: days_since (the last event, of a kind
    with `where`; with `column`, since that timestamp's latest value), latest (the latest
    non-null value of `column`; with `equals`, 1 when it equals that else 0), trend
    ((recent + 1) / (the mean of `of` per `recent` days over the rest of `base` days + 1)).
    """

    KEY = "features.aggregations[]"
    name: NonEmpty
    kind: AggregationKind = Field(title="aggregation kind")
    column: Text = ""
    where: dict[Text, Values] = Field(default_factory=dict)
    # Windows of this feature (default: features.windows); [] with total: all history only.
    windows: list[Window] | None = None
    total: bool = True
    scale: float = Field(1.0, gt=0)
    # Sums add values rounded to this many decimals as whole numbers: the same result in
    # any order Spark adds them.
    decimals: int = Field(3, ge=0, le=9)
    equals: Text = ""
    numerator: Text = ""
    denominator: Text = ""
    of: Text = ""
    recent: Window = 7
    base: Window = 28

    @model_validator(mode="after")
    def _parts_given(self) -> Aggregation:
        needs = {
            "sum": ("column",), "mean": ("column",), "min": ("column",), "max": ("column",),
            "distinct": ("column",), "latest": ("column",),
            "ratio": ("numerator", "denominator"), "trend": ("of",),
        }  # fmt: skip
        for key in needs.get(self.kind, ()):
            if not getattr(self, key):
                raise rule(key, f"must be set for kind {self.kind}")
        if self.kind == "trend" and self.base <= self.recent:
            raise rule("base", f"must be longer than recent ({self.recent}), got {self.base}")
        if self.kind in WINDOWED and self.windows == [] and not self.total:
            raise rule("windows", "no window and total false: the feature has no column")
        return self


class TargetConfig(Section):
    """What the label says about the `label_horizon_days` from the snapshot on:
    `churn_event`: one of `event_types` happens (and an entity with one before the snapshot
    is out of it); `inactivity`: no event of `event_types` (empty: of any type) happens;
    `event`: one of `event_types` happens (e.g. an upgrade)."""

    KEY = "features.target"
    kind: Literal["churn_event", "inactivity", "event"] = Field("churn_event", title="target")
    event_types: list[NonEmpty] = Field(default_factory=list)
    label_col: NonEmpty = "churned"

    @model_validator(mode="after")
    def _types_given(self) -> TargetConfig:
        if self.kind != "inactivity" and not self.event_types:
            raise rule("event_types", f"must name at least one event type for {self.kind}")
        return self


def check_features(
    aggregations: list[Aggregation], target: TargetConfig, source: EventSourceSpec
) -> list[tuple[str, str]]:
    """(dotted key under features, problem) for every reference the source cannot meet."""
    problems: list[tuple[str, str]] = []
    columns = set(source.columns)
    names = [a.name for a in aggregations]
    windowed = {a.name for a in aggregations if a.kind in WINDOWED and a.kind != "ratio"}
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(("aggregations", f"two features are named {name!r}"))
    for i, a in enumerate(aggregations):
        key = f"aggregations[{i}]"
        if a.column and a.column not in columns:
            problems.append((f"{key}.column", f"{a.column!r} is not a column of the event log"))
        for column in a.where:
            if column not in columns:
                problems.append((f"{key}.where", f"{column!r} is not a column of the event log"))
        for ref in ("numerator", "denominator", "of"):
            value = getattr(a, ref)
            if value and value not in windowed:
                problems.append(
                    (f"{key}.{ref}", f"{value!r} is not a count, sum or other windowed feature")
                )
    if target.event_types and not source.event_type:
        problems.append(("target.event_types", "source.events.event_type names no column"))
    # Where a rule lists the values a column may hold, a value outside them is a typo.
    allowed = {r.column: set(r.allowed) for r in source.rules if r.allowed is not None}
    known = allowed.get(source.event_type)
    for i, name in enumerate(target.event_types):
        if known is not None and name not in known:
            problems.append(
                (f"target.event_types[{i}]", f"{name!r} is not an allowed {source.event_type} "
                 f"value ({', '.join(sorted(known))})")
            )  # fmt: skip
    for i, a in enumerate(aggregations):
        for column, values in a.where.items():
            bad = [v for v in values if column in allowed and v not in allowed[column]]
            if bad:
                problems.append(
                    (f"aggregations[{i}].where.{column}", f"{bad[0]!r} is not an allowed "
                     f"{column} value ({', '.join(sorted(allowed[column]))})")
                )  # fmt: skip
    return problems


def describe_problems(problems: list[tuple[str, str]], prefix: str) -> Any:
    """The first problem as a config rule error at `prefix.key`."""
    key, message = problems[0]
    return rule(f"{prefix}.{key}" if prefix else key, message)
