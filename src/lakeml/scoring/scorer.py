"""Batch scoring: a registered model over a feature snapshot (or any table) -> gold/churn_scores.

One scorer serves every flavor. A Spark ML model runs its own `transform` (distributed, no
Python round trip); any other pyfunc model runs through `mlflow.pyfunc.spark_udf` with Arrow
batches and few, large partitions. The input is checked against the model signature before
anything runs, and a rerun for the same snapshot and model version replaces its rows.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models.model import ModelInfo
from mlflow.tracking import MlflowClient
from pyspark.errors import AnalysisException
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeml.core import storage
from lakeml.core.config import Config
from lakeml.core.errors import LakemlError
from lakeml.core.report import Report
from lakeml.scoring import drift as monitor
from lakeml.tracking import store as tracking

ARROW_BATCH_CONF = "spark.sql.execution.arrow.maxRecordsPerBatch"
SNAPSHOT = "snapshot_date"
PROBABILITY = "churn_probability"
DEFAULT_THRESHOLD = 0.5

# MLflow signature column types -> the Spark type the model is given, and the input types that
# convert to it without losing meaning (widening only; a string is never read as a number).
_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
SIGNATURE_TYPES: dict[str, tuple[T.DataType, tuple[type, ...]]] = {
    "long": (T.LongType(), _INTEGRAL),
    "integer": (T.IntegerType(), (T.ByteType, T.ShortType, T.IntegerType)),
    "double": (T.DoubleType(), (*_INTEGRAL, T.FloatType, T.DoubleType, T.DecimalType)),
    "float": (T.FloatType(), (T.ByteType, T.ShortType, T.IntegerType, T.FloatType)),
    "string": (T.StringType(), (T.StringType,)),
    "boolean": (T.BooleanType(), (T.BooleanType,)),
    "datetime": (T.TimestampType(), (T.DateType, T.TimestampType, T.TimestampNTZType)),
}


@dataclass(frozen=True)
class ModelRef:
    """A registered model version a URI resolved to, with the tags the contract puts on it."""

    uri: str
    name: str
    version: int
    run_id: str
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def load_uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def tag(self, key: str, default: str) -> str:
        return self.tags.get(key) or default


@dataclass(frozen=True)
class Feature:
    """One input column of the model signature."""

    name: str
    type: str

    @property
    def spark_type(self) -> T.DataType:
        return SIGNATURE_TYPES[self.type][0]


# --- model URIs and the registry -------------------------------------------------------------

_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)$")
_VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")
_RUN_URI = re.compile(r"^runs:/(?P<run_id>[0-9a-zA-Z]+)/(?P<path>.+)$")


def parse_model_uri(uri: str) -> tuple[str, str, str]:
    """Split a model URI into (kind, first, second): ("alias", name, alias),
    ("version", name, version) or ("run", run_id, artifact_path)."""
    for kind, pattern in (("alias", _ALIAS_URI), ("version", _VERSION_URI), ("run", _RUN_URI)):
        match = pattern.match(uri.strip())
        if match:
            first, second = match.groups()
            return kind, first, second.rstrip("/")
    raise LakemlError(
        f"model URI {uri!r} is not one lakeml can score with; use models:/<name>@<alias>, "
        "models:/<name>/<version> or runs:/<run_id>/<path> (of a registered model)"
    )


def _version_ref(uri: str, mv: Any) -> ModelRef:
    return ModelRef(uri, mv.name, int(mv.version), mv.run_id or "", dict(mv.tags or {}))


def _version_for_run(client: MlflowClient, uri: str, run_id: str, path: str) -> ModelRef:
    """The registered version whose source is the model logged at `path` in run `run_id`."""
    matches = []
    for mv in client.search_model_versions(f"run_id = '{run_id}'"):
        source = mv.source or ""
        if source.startswith("models:/m-"):
            # MLflow 3 logged models: the version points at the logged model, named by its path.
            logged = client.get_logged_model(source.removeprefix("models:/"))
            if logged.name == path:
                matches.append(mv)
        elif source.rstrip("/").endswith(f"/{path}"):
            matches.append(mv)
    if not matches:
        raise LakemlError(
            f"model URI {uri!r} is not a registered model version (scoring needs the version's "
            "tags: threshold, entity column, training lineage); register it, or pass "
            "models:/<name>/<version>"
        )
    return _version_ref(uri, max(matches, key=lambda mv: int(mv.version)))


def resolve_model(client: MlflowClient, uri: str) -> ModelRef:
    """Resolve an alias, version or run URI to the registered model version it names."""
    kind, first, second = parse_model_uri(uri)
    try:
        if kind == "alias":
            return _version_ref(uri, client.get_model_version_by_alias(first, second))
        if kind == "version":
            return _version_ref(uri, client.get_model_version(first, second))
        return _version_for_run(client, uri, first, second)
    except MlflowException as exc:
        what = {
            "alias": f"alias {second!r} of registered model {first!r}",
            "version": f"version {second} of registered model {first!r}",
            "run": f"run {first!r}",
        }[kind]
        raise LakemlError(
            f"cannot score with {uri}: {what} was not found in the MLflow registry at "
            f"{mlflow.get_registry_uri()} ({exc.message}); list versions with `lakeml models`, "
            "train one with `lakeml train` or move the alias with `lakeml promote`"
        ) from None


def signature_features(info: ModelInfo, uri: str) -> list[Feature]:
    """The model's input columns and types, from its logged signature."""
    signature = info.signature
    if signature is None or not signature.inputs.has_input_names():
        raise LakemlError(
            f"model {uri} has no column signature, so its input cannot be checked; log it with "
            "signature=infer_signature(<feature columns>)"
        )
    features = []
    for spec in signature.inputs.inputs:
        type_name = getattr(spec.type, "name", str(spec.type))
        if type_name not in SIGNATURE_TYPES:
            raise LakemlError(
                f"model {uri} expects column {spec.name!r} of type {type_name}, which batch "
                f"scoring does not support; supported: {', '.join(SIGNATURE_TYPES)}"
            )
        features.append(Feature(spec.name, type_name))
    return features


def pyfunc_output(info: ModelInfo) -> str:
    """The spark_udf result type: array<double> for class probabilities (P(churn) = last
    element), double when the model returns one probability per row."""
    if info.flavors.get("python_function", {}).get("predict_fn") == "predict_proba":
        return "array<double>"
    outputs = info.signature.outputs if info.signature else None
    if outputs is None:
        return "array<double>"
    specs = outputs.inputs
    if outputs.is_tensor_spec():
        shape = specs[0].shape
        return "double" if len(shape) == 1 or shape[-1] == 1 else "array<double>"
    return "double" if len(specs) == 1 else "array<double>"


# --- the input: checked against the signature before anything runs ---------------------------


def check_input(
    schema: T.StructType, features: list[Feature], entity_col: str, uri: str, source: str
) -> None:
    """Raise naming every missing or mistyped column of `source` the model needs."""
    present = {f.name: f.dataType for f in schema.fields}
    missing = [c for c in [entity_col, *(f.name for f in features)] if c not in present]
    mistyped = [
        f"{f.name} ({present[f.name].simpleString()}, model expects {f.type})"
        for f in features
        if f.name in present and not isinstance(present[f.name], SIGNATURE_TYPES[f.type][1])
    ]
    problems = []
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    if mistyped:
        problems.append(f"mistyped columns: {', '.join(mistyped)}")
    if problems:
        raise LakemlError(
            f"{source} does not match the signature of model {uri}: {'; '.join(problems)}. "
            "Score a table with the model's feature columns (rebuild it with `lakeml features`) "
            "or use a model trained on this table's columns"
        )


def conform_input(
    df: DataFrame, features: list[Feature], entity_col: str, snapshot_col: str
) -> DataFrame:
    """Keys plus the signature columns, cast to the signature types (checked as safe before)."""
    return df.select(
        F.col(entity_col),
        F.col(snapshot_col).cast("date").alias(SNAPSHOT),
        *[F.col(f.name).cast(f.spark_type).alias(f.name) for f in features],
    )


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise LakemlError(f"snapshot date {text!r} is not a date; write it as YYYY-MM-DD") from None


def read_input(spark: SparkSession, cfg: Config, input_path: str | None) -> DataFrame:
    """The feature table, or the Delta or Parquet table at `input_path`."""
    if input_path is None:
        return storage.read(spark, cfg.table("features"))
    if storage.exists(spark, input_path):
        return spark.read.format("delta").load(input_path)
    try:
        return spark.read.parquet(input_path)
    except AnalysisException as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise LakemlError(
            f"no Delta or Parquet table at {input_path!r} ({first_line}); point --input at one"
        ) from None


def select_snapshot(
    df: DataFrame, snapshot_col: str, snapshot_date: str | None, source: str
) -> tuple[DataFrame, dt.date]:
    """Rows of the chosen snapshot (default the latest). A table without a snapshot column is
    scored whole, as of `snapshot_date` or today (UTC)."""
    if snapshot_col not in df.columns:
        day = (
            parse_date(snapshot_date) if snapshot_date else dt.datetime.now(dt.timezone.utc).date()
        )
        return df.withColumn(snapshot_col, F.lit(day)), day
    snapshot = F.col(snapshot_col).cast("date")
    if snapshot_date:
        day = parse_date(snapshot_date)
    else:
        latest = df.agg(F.max(snapshot).alias("latest")).first()
        if latest is None or latest["latest"] is None:
            raise LakemlError(f"{source} is empty: there is nothing to score")
        day = latest["latest"]
    return df.filter(snapshot == F.lit(day)), day


def input_stats(df: DataFrame, entity_col: str, integer_cols: list[str]) -> dict[str, int]:
    """Rows, entity-key problems and nulls in integer columns, in one pass."""
    row = df.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_distinct(entity_col).alias("entities"),
        F.count_if(F.col(entity_col).isNull()).alias("null_entities"),
        *[F.count_if(F.col(c).isNull()).alias(f"nulls:{c}") for c in integer_cols],
    ).first()
    return row.asDict() if row else {}


def available_snapshots(df: DataFrame, snapshot_col: str, limit: int = 10) -> list[str]:
    rows = (
        df.select(F.col(snapshot_col).cast("date").alias("d"))
        .distinct()
        .orderBy(F.desc("d"))
        .limit(limit)
        .collect()
    )
    return [str(r["d"]) for r in rows]


def check_rows(
    stats: dict[str, int],
    entity_col: str,
    integer_cols: list[str],
    pyfunc: bool,
    source: str,
    uri: str,
) -> None:
    """Raise if the input is empty, has missing or repeated entity ids, or holds nulls a pyfunc
    model's integer columns cannot take (MLflow rejects them during scoring)."""
    rows = stats.get("rows", 0)
    if rows == 0:
        raise LakemlError(f"{source} is empty: there is nothing to score")
    duplicates = rows - stats["null_entities"] - stats["entities"]
    if stats["null_entities"] or duplicates:
        raise LakemlError(
            f"{source} has {stats['null_entities']} rows without {entity_col} and {duplicates} "
            f"repeated {entity_col} values; scores need exactly one row per {entity_col}"
        )
    nulls = {c: stats[f"nulls:{c}"] for c in integer_cols if stats[f"nulls:{c}"]}
    if pyfunc and nulls:
        listed = ", ".join(f"{c} ({n} nulls)" for c, n in nulls.items())
        raise LakemlError(
            f"{source} has nulls in columns model {uri} declares as integers: {listed}; MLflow "
            "cannot pass nulls in integer columns to a pyfunc model. Log the model with these "
            "columns as double in its signature, or fill the nulls in the input"
        )


# --- scoring: pure DataFrame -> DataFrame -----------------------------------------------------


def spark_model_probability(model: Any, df: DataFrame, entity_col: str) -> DataFrame:
    """P(churn) from a Spark ML model's own transform: element 1 of its probability vector."""
    return model.transform(df).select(
        F.col(entity_col),
        F.col(SNAPSHOT),
        vector_to_array(F.col("probability"))[1].alias(PROBABILITY),
    )


def pyfunc_probability(
    predict: Callable[..., Column],
    df: DataFrame,
    entity_col: str,
    features: list[Feature],
    array_output: bool,
) -> DataFrame:
    """P(churn) from a pyfunc spark_udf: the last element of a class-probability array, or the
    single probability it returns."""
    out = predict(F.struct(*[F.col(f.name) for f in features]))
    probability = F.element_at(out, -1) if array_output else out
    return df.select(
        F.col(entity_col),
        F.col(SNAPSHOT),
        probability.cast("double").alias(PROBABILITY),
    )


def score_table(
    probabilities: DataFrame,
    entity_col: str,
    threshold: float,
    risk_bands: int,
    model_name: str,
    model_version: int,
    run_id: str,
) -> DataFrame:
    """The scores table rows: label at the model's threshold, risk band and lineage.

    `risk_decile` is `ntile(risk_bands)` by probability, highest first, within the snapshot:
    one window over the snapshot's rows, fine at entity scale (one row per user). A NaN
    probability becomes null and ranks last.
    """
    p = F.col(PROBABILITY)
    clean = probabilities.select(
        F.col(entity_col),
        F.col(SNAPSHOT),
        F.nanvl(p, F.lit(None).cast("double")).alias(PROBABILITY),
    )
    by_risk = Window.partitionBy(SNAPSHOT).orderBy(p.desc_nulls_last(), F.col(entity_col).asc())
    return clean.select(
        F.col(entity_col),
        F.col(SNAPSHOT),
        p.alias(PROBABILITY),
        (p >= F.lit(threshold)).cast("int").alias("predicted_churn"),
        F.ntile(risk_bands).over(by_risk).alias("risk_decile"),
        F.lit(model_name).alias("model_name"),
        F.lit(model_version).cast("int").alias("model_version"),
        F.lit(run_id).alias("run_id"),
        F.current_timestamp().alias("scored_at"),
    )


def key_condition(day: dt.date, model_name: str, model_version: int) -> str:
    """The replaceWhere predicate for one snapshot scored by one model version."""
    name = model_name.replace("\\", "\\\\").replace("'", "\\'")
    return (
        f"{SNAPSHOT} = DATE'{day.isoformat()}' AND model_name = '{name}' "
        f"AND model_version = {int(model_version)}"
    )


@contextmanager
def sql_conf(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """Set session SQL settings for a block, restoring the previous values after it."""
    previous = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def scoring_partitions(spark: SparkSession) -> int:
    """At least one partition per core for the pyfunc UDF, so every core runs a Python worker.

    An input with more partitions keeps them: merging them (coalesce to one per core) measured
    slower in `make bench` (2.02 s vs 1.51 s for 100k rows in 8 files), as fewer tasks
    pipeline the read, the UDF and the write less well.
    """
    return max(1, spark.sparkContext.defaultParallelism)


def predict(
    spark: SparkSession,
    info: ModelInfo,
    ref: ModelRef,
    df: DataFrame,
    features: list[Feature],
    entity_col: str,
) -> tuple[DataFrame, str]:
    """Probabilities for `df` with the model's best scorer, and that scorer's name."""
    if "spark" in info.flavors:
        model = mlflow.spark.load_model(ref.load_uri)
        return spark_model_probability(model, df, entity_col), "spark"
    result_type = pyfunc_output(info)
    udf = mlflow.pyfunc.spark_udf(spark, ref.load_uri, result_type=result_type, env_manager="local")
    n = scoring_partitions(spark)
    current = df.rdd.getNumPartitions()
    spread = df.repartition(n) if current < n else df
    probs = pyfunc_probability(udf, spread, entity_col, features, result_type != "double")
    return probs, "pyfunc"


def check_output_schema(spark: SparkSession, path: str, scores: DataFrame) -> None:
    """A scores table written for another entity column cannot take these rows."""
    if not storage.exists(spark, path):
        return
    have = storage.read(spark, path).columns
    if sorted(have) != sorted(scores.columns):
        raise LakemlError(
            f"the scores table {path} has columns {', '.join(have)} but this model writes "
            f"{', '.join(scores.columns)} (its entity column differs); point tables.scores "
            "at another location for this model"
        )


# --- the stage --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoringInput:
    """The rows to score, checked and conformed, with where they came from."""

    rows: DataFrame
    snapshot: dt.date
    count: int
    source: str


def load_input(
    spark: SparkSession,
    cfg: Config,
    uri: str,
    features: list[Feature],
    pyfunc: bool,
    entity_col: str,
    snapshot_col: str,
    snapshot_date: str | None,
    input_path: str | None,
) -> ScoringInput:
    """Read the snapshot to score and check it against the signature before anything runs."""
    source = input_path or cfg.table("features")
    raw = read_input(spark, cfg, input_path)
    check_input(raw.schema, features, entity_col, uri, source)
    selected, day = select_snapshot(raw, snapshot_col, snapshot_date, source)
    conformed = conform_input(selected, features, entity_col, snapshot_col)
    integer_cols = [f.name for f in features if f.type in ("long", "integer")]
    stats = input_stats(conformed, entity_col, integer_cols)
    if stats.get("rows", 0) == 0 and snapshot_date and snapshot_col in raw.columns:
        known = available_snapshots(raw, snapshot_col)
        raise LakemlError(
            f"{source} has no rows for snapshot {day}; snapshots there (latest first): "
            f"{', '.join(known) or 'none'}; pass --snapshot-date with one of them"
        )
    check_rows(stats, entity_col, integer_cols, pyfunc, source, uri)
    return ScoringInput(conformed, day, int(stats["rows"]), source)


def check_settings(cfg: Config) -> None:
    if cfg.score.risk_bands < 1:
        raise LakemlError("config key 'score.risk_bands' must be at least 1 (10 for deciles)")
    if cfg.score.arrow_batch_size < 1:
        raise LakemlError("config key 'score.arrow_batch_size' must be at least 1")


def run(
    spark: SparkSession,
    cfg: Config,
    report: Report,
    model_uri: str | None = None,
    snapshot_date: str | None = None,
    input_path: str | None = None,
) -> dict[str, Any]:
    """Score one snapshot of the feature table (or the table at `input_path`) with a registered
    model, write it to the scores table, then compare its features with the training window."""
    check_settings(cfg)
    client = tracking.connect(cfg)
    uri = model_uri or cfg.model_uri
    with report.stage("score"):
        ref = resolve_model(client, uri)
        entity_col = ref.tag("entity_col", cfg.train.entity_col)
        snapshot_col = ref.tag("snapshot_col", cfg.train.snapshot_col)
        report.progress("score", f"{uri} -> {ref.name} version {ref.version} (run {ref.run_id})")
        info = mlflow.models.get_model_info(ref.load_uri)
        features = signature_features(info, uri)
        if not {"spark", "python_function"} & set(info.flavors):
            raise LakemlError(
                f"model {uri} has neither a spark nor a python_function flavor; log it with "
                "mlflow.spark.log_model or a pyfunc-capable flavor"
            )
        pyfunc = "spark" not in info.flavors
        data = load_input(
            spark, cfg, uri, features, pyfunc, entity_col, snapshot_col, snapshot_date, input_path
        )
        report.progress(
            "score", f"{data.count} rows of snapshot {data.snapshot} from {data.source}"
        )

        threshold_tag = ref.tags.get("threshold")
        threshold = float(threshold_tag) if threshold_tag else DEFAULT_THRESHOLD
        if not threshold_tag:
            report.progress("score", f"model has no threshold tag; labelling at {threshold}")
        path = cfg.table("scores")
        with sql_conf(spark, {ARROW_BATCH_CONF: str(cfg.score.arrow_batch_size)}):
            probabilities, scorer = predict(spark, info, ref, data.rows, features, entity_col)
            scores = score_table(
                probabilities,
                entity_col,
                threshold,
                cfg.score.risk_bands,
                ref.name,
                ref.version,
                ref.run_id,
            )
            check_output_schema(spark, path, scores)
            condition = key_condition(data.snapshot, ref.name, ref.version)
            storage.replace_where(scores, path, condition, partition_by=[SNAPSHOT])
        scores_version = storage.version(spark, path)
        report.progress(
            "score",
            f"{data.count} rows scored with the {scorer} scorer -> {path} "
            f"(Delta version {scores_version})",
        )

    with report.stage("drift"):
        drift = monitor.check_drift(
            spark,
            cfg,
            report,
            scored=data.rows,
            features=[(f.name, f.type) for f in features],
            snapshot_date=data.snapshot,
            model_name=ref.name,
            model_version=ref.version,
            tags=ref.tags,
        )

    summary = {
        "model_uri": uri,
        "model_name": ref.name,
        "model_version": ref.version,
        "run_id": ref.run_id,
        "scorer": scorer,
        "snapshot_date": str(data.snapshot),
        "input": data.source,
        "rows_scored": data.count,
        "threshold": threshold,
        "scores_table": {"path": path, "version": scores_version},
        "drift": drift,
    }
    report.add(score=summary, drift_warnings=drift["warnings"])
    return {**summary, "drift_warnings": drift["warnings"], "summary_lines": summary_lines(summary)}


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """What the pipeline's closing summary says about scoring."""
    drift = summary["drift"]
    lines = [
        f"scored {summary['rows_scored']} rows of snapshot {summary['snapshot_date']} with "
        f"{summary['model_name']} v{summary['model_version']} -> "
        f"{summary['scores_table']['path']} (Delta version {summary['scores_table']['version']})"
    ]
    if drift["warnings"]:
        lines.append(f"drift warnings: {'; '.join(drift['warnings'])}")
    elif drift.get("skipped"):
        lines.append(f"drift not computed: {drift['skipped']}")
    else:
        lines.append("no feature drift over the thresholds")
    return lines
