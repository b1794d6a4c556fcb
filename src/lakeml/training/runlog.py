"""Log a training to MLflow: parent and nested runs, plots, tables, lineage, models.

One parent run per training (config, Delta lineage, the winner's and the baseline's test
metrics) with a nested run per model type and one for the baseline (params, grid
results, metrics, plots, deciles). Nested runs put model types side by side within a
training; parent runs compare trainings over time. Only the winner's Spark model and the
baseline are saved as models: writing a PipelineModel costs seconds.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import mlflow.spark
import numpy as np
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema, TensorSpec
from pyspark.sql import types as T

from lakeml.core.config import TrainConfig
from lakeml.core.secrets import redact_mapping
from lakeml.tracking import tags
from lakeml.training import evaluate, plots, trainset
from lakeml.training.evaluate import Outcome
from lakeml.training.trainset import TEST, TRAIN, VALIDATION, TrainingSet

# Explicit requirements: MLflow's inference would import and trace the model (~30 s here).
SPARK_REQUIREMENTS = [f"pyspark=={metadata.version('pyspark')}"]
# A pipeline ending in xgboost.spark's model needs xgboost to load.
XGBOOST_REQUIREMENTS = [f"xgboost-cpu=={metadata.version('xgboost-cpu')}"]
SKLEARN_REQUIREMENTS = [
    f"scikit-learn=={metadata.version('scikit-learn')}",
    f"skops=={metadata.version('skops')}",
    f"pandas=={metadata.version('pandas')}",
]
# skops refuses types it does not know; OneHotEncoder keeps a numpy dtype.
SKOPS_TRUSTED_TYPES = ["numpy.dtype"]
MLFLOW_TYPES = {
    T.ByteType: "integer",
    T.ShortType: "integer",
    T.IntegerType: "integer",
    T.LongType: "long",
    T.FloatType: "float",
    T.DoubleType: "double",
    T.StringType: "string",
}
# Dataset schemas also describe the key columns.
DATASET_TYPES = {**MLFLOW_TYPES, T.DateType: "datetime", T.TimestampType: "datetime"}


def git_commit() -> str:
    """The checked-out commit, or 'unknown' outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def input_schema(spec: trainset.FeatureSpec) -> Schema:
    """The feature columns with their types: what a scorer must supply."""
    return Schema([ColSpec(MLFLOW_TYPES[type(f.dataType)], f.name) for f in spec.schema.fields])


def delta_input(name: str, path: str, version: int, columns: list[T.StructField]) -> DatasetInput:
    """A Delta table at a version as an MLflow dataset input (source type delta_table).

    Built as the entity `mlflow.data.from_spark(df, path=..., version=...)` would log, but
    directly: from_spark runs a Spark counting job for every run it is logged to, rejects
    versions of non-local tables (s3a://, abfss://), and its DeltaDatasetSource drops
    version 0 (a falsy check), which would lose the lineage of a first write.
    """
    schema = Schema([ColSpec(DATASET_TYPES[type(f.dataType)], f.name) for f in columns])
    source = json.dumps({"path": path, "delta_table_version": version})
    digest = hashlib.md5(source.encode()).hexdigest()[:8]
    dataset = Dataset(
        name=name,
        digest=digest,
        source_type="delta_table",
        source=source,
        schema=json.dumps({"mlflow_colspec": schema.to_dict()}),
    )
    return DatasetInput(dataset, tags=[InputTag(key="mlflow.data.context", value="training")])


def lineage_inputs(ts: TrainingSet, t: TrainConfig) -> list[DatasetInput]:
    """The gold feature and label tables at the Delta versions this training read."""
    lin = ts.lineage
    keys = [ts.df.schema[t.entity_col], ts.df.schema[t.snapshot_col]]
    return [
        delta_input(
            "gold_features",
            lin.features_path,
            lin.features_version,
            [*keys, *ts.spec.schema.fields],
        ),
        delta_input(
            "gold_labels", lin.labels_path, lin.labels_version, [*keys, ts.df.schema[t.label_col]]
        ),
    ]


def prefixed(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in metrics.items() if np.isfinite(v)}


def write_artifacts(o: Outcome, folder: Path, title: str) -> None:
    """Plots, decile/calibration tables, grid results and feature weights of one model."""
    plot_dir = folder / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    deciles = evaluate.decile_table(o.y, o.p)
    calibration = evaluate.calibration_table(o.y, o.p)
    deciles.to_csv(folder / "deciles.csv", index=False)
    (folder / "deciles.json").write_text(deciles.to_json(orient="records", indent=1))
    calibration.to_csv(folder / "calibration.csv", index=False)
    o.weights.to_csv(folder / "feature_weights.csv", index=False)
    if o.grid_results:
        (folder / "grid_results.json").write_text(json.dumps(o.grid_results, indent=1))
    plots.roc_png(o.y, o.p, title, plot_dir / "roc.png")
    plots.pr_png(o.y, o.p, title, plot_dir / "pr.png")
    plots.calibration_png(calibration, title, plot_dir / "calibration.png")
    plots.deciles_png(deciles, title, plot_dir / "deciles.png")
    plots.feature_weights_png(o.weights, title, plot_dir / "feature_weights.png")
    if o.drivers is not None:
        o.drivers.to_csv(folder / "drivers.csv", index=False)
        plots.feature_weights_png(o.drivers, f"{title}: drivers", plot_dir / "drivers.png")


def log_batch(
    client: mlflow.MlflowClient,
    run_id: str,
    metrics: dict[str, float],
    params: dict[str, Any],
    tags: dict[str, str],
) -> None:
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
        params=[Param(k, str(v)) for k, v in params.items()],
        tags=[RunTag(k, str(v)) for k, v in tags.items()],
    )


@dataclass(frozen=True)
class LoggedRuns:
    """What `log_runs` logged: nested run ids and logged model URIs by model name."""

    runs: dict[str, str]
    model_uris: dict[str, str]
    model_seconds: float
    other_seconds: float
    # Tags for the winner's version beyond the contract (an xgboost winner's native model).
    winner_tags: dict[str, str] = field(default_factory=dict)


def log_runs(
    t: TrainConfig,
    config: tuple[str, dict[str, Any]],
    ts: TrainingSet,
    outcomes: list[Outcome],
    winner: Outcome,
    base: Outcome | None,
) -> LoggedRuns:
    """Log the parent run (inside it) and one nested run per model; save winner + baseline.

    `config` is the config's digest and its redacted mapping (logged as config.yaml). A
    nested run describes the model it holds: the winner type's run holds the refit model
    and its test metrics (plus `train_only_test_*`, comparable with the other types)."""
    config_digest, config_raw = config
    started = time.monotonic()
    client = mlflow.MlflowClient()
    parent_id = mlflow.active_run().info.run_id
    common = {
        "git_commit": git_commit(),
        tags.CONFIG_DIGEST: config_digest,
        **ts.lineage.as_tags(),
        **ts.split.as_tags(),
    }
    train_w = trainset.class_weights(ts.counts[TRAIN], t.class_weight)
    rows = {f"{w}_rows": sum(ts.counts[w].values()) for w in (TRAIN, VALIDATION, TEST)}
    params = {
        "class_weight": t.class_weight,
        "class_weight_0": round(train_w[0], 6),
        "class_weight_1": round(train_w[1], 6),
        "primary_metric": t.primary_metric,
        "threshold_policy": t.threshold.policy,
        "threshold_top_k_pct": t.threshold.top_k_pct,
        "model_types": ",".join(o.name for o in outcomes),
        "winner": winner.name,
        "parallelism": t.parallelism,
        "seed": t.seed,
        **rows,
    }
    metrics = {**prefixed(winner.test, "test_"), "threshold": winner.threshold}
    if base is not None:
        metrics.update(prefixed(base.test, "baseline_test_"))
    # One batch per run: each MLflow call is a store transaction (an HTTP call, or a
    # SQLite commit), and they add up on a busy machine.
    log_batch(client, parent_id, metrics, params, {**common, "winner": winner.name})
    # `Config.raw` is already redacted; this keeps a mapping from anywhere else just as safe.
    mlflow.log_dict(redact_mapping(config_raw), "config.yaml")
    lineage = lineage_inputs(ts, t)
    client.log_inputs(parent_id, datasets=lineage)

    runs: dict[str, str] = {}
    model_uris: dict[str, str] = {}
    winner_tags: dict[str, str] = {}
    model_seconds = 0.0
    tuned = {o.name: o for o in outcomes}
    logged_models = [winner if o.name == winner.name else o for o in outcomes]
    for o in [*logged_models, *([base] if base else [])]:
        role = (
            "the scikit-learn baseline (never gated)"
            if o is base
            else "the winner, refit and saved as a model"
            if o is winner
            else "tuned, not the winner"
        )
        note = (
            f"{o.name}: {role}. Fit on {o.fit_window}; test ROC AUC {o.test['roc_auc']:.4f}, "
            f"PR AUC {o.test['pr_auc']:.4f}, threshold {o.threshold:.4f}."
        )
        run_tags = {
            **common,
            tags.MODEL_TYPE: o.name,
            "fit_window": o.fit_window,
            "mlflow.note.content": note,
        }
        with mlflow.start_run(run_name=o.name, nested=True, tags=run_tags) as child:
            run_id = child.info.run_id
            runs[o.name] = run_id
            metrics = {**prefixed(o.test, "test_"), "threshold": o.threshold}
            if o.validation_metric is not None:
                metrics[f"validation_{t.primary_metric}"] = o.validation_metric
            if o is winner:
                metrics.update(prefixed(tuned[o.name].test, "train_only_test_"))
            log_batch(client, run_id, metrics, {"model_type": o.name, **o.params}, {})
            client.log_inputs(run_id, datasets=lineage)
            with tempfile.TemporaryDirectory() as tmp:
                write_artifacts(o, Path(tmp), o.name)
                mlflow.log_artifacts(tmp)
            t0 = time.monotonic()
            if o is winner:
                signature = ModelSignature(
                    inputs=input_schema(ts.spec), outputs=Schema([ColSpec("double", "prediction")])
                )
                info = mlflow.spark.log_model(
                    o.model,
                    artifact_path="model",
                    signature=signature,
                    input_example=None,
                    pip_requirements=SPARK_REQUIREMENTS
                    + (XGBOOST_REQUIREMENTS if o.name == "xgboost" else []),
                )
                model_uris[o.name] = info.model_uri
                if o.name == "xgboost":
                    winner_tags = log_native(o, ts, run_id)
            elif o is base:
                signature = ModelSignature(
                    inputs=input_schema(ts.spec),
                    outputs=Schema([TensorSpec(np.dtype("float64"), (-1, 2))]),
                )
                info = mlflow.sklearn.log_model(
                    o.model,
                    name="model",
                    signature=signature,
                    input_example=None,
                    pyfunc_predict_fn="predict_proba",
                    pip_requirements=SKLEARN_REQUIREMENTS,
                    skops_trusted_types=SKOPS_TRUSTED_TYPES,
                )
                model_uris[o.name] = info.model_uri
            model_seconds += time.monotonic() - t0
    total = time.monotonic() - started
    return LoggedRuns(
        runs, model_uris, round(model_seconds, 2), round(total - model_seconds, 2), winner_tags
    )


def log_native(o: Outcome, ts: TrainingSet, run_id: str) -> dict[str, str]:
    """Log an xgboost winner's booster (mlflow.xgboost) and its encoding for use without a
    JVM, and measure how far its probabilities are from the Spark model's on the test
    window; the version tags that record both."""
    import mlflow.xgboost
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    from lakeml.scoring import native

    booster = o.model.stages[-1].get_booster()
    enc = native.encoding(o.model)
    info = mlflow.xgboost.log_model(
        booster, name="native_model", pip_requirements=XGBOOST_REQUIREMENTS
    )
    mlflow.log_dict(enc, "native_encoding.json")
    cols = list(ts.spec.columns)
    test = (
        o.model.transform(ts.window(TEST))
        .select(*cols, vector_to_array(F.col("probability"))[1].alias("_p"))
        .toPandas()
    )
    diff = native.parity(booster, enc, test[cols], test["_p"].to_numpy())
    return {
        tags.NATIVE_MODEL_URI: info.model_uri,
        tags.NATIVE_ENCODING: f"runs:/{run_id}/native_encoding.json",
        tags.NATIVE_PARITY: repr(diff),
    }
