"""A small lake for the scoring tests: a feature table with a training snapshot and a later
one, and two registered models trained on the first (the conftest's `lake` fixture)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import mlflow
from mlflow.models import infer_signature
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import StringIndexer, VectorAssembler
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.pipeline import Pipeline as SkPipeline
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from lakeml.core import storage
from lakeml.core.config import Config, load_config
from lakeml.core.report import Report
from lakeml.tracking import store as tracking

CONF = Path(__file__).resolve().parents[1] / "conf" / "local.yaml"
TRAIN_DAY = date(2018, 11, 1)
LATEST_DAY = date(2018, 11, 8)
NUMERIC = ["songs_7d", "thumbs_down_28d"]
FEATURES = [*NUMERIC, "gender"]
USERS = 20

FEATURE_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.StringType()),
        T.StructField("snapshot_date", T.DateType()),
        T.StructField("songs_7d", T.LongType()),
        T.StructField("thumbs_down_28d", T.DoubleType()),
        T.StructField("gender", T.StringType()),
    ]
)


SCORES_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.StringType()),
        T.StructField("snapshot_date", T.DateType()),
        T.StructField("churn_probability", T.DoubleType()),
        T.StructField("predicted_churn", T.IntegerType()),
        T.StructField("risk_decile", T.IntegerType()),
        T.StructField(
            "reasons",
            T.ArrayType(
                T.StructType(
                    [
                        T.StructField("feature", T.StringType()),
                        T.StructField("value", T.StringType()),
                        T.StructField("contribution", T.DoubleType()),
                    ]
                )
            ),
        ),
        T.StructField("model_name", T.StringType()),
        T.StructField("model_version", T.IntegerType()),
        T.StructField("run_id", T.StringType()),
        T.StructField("scored_at", T.TimestampType()),
    ]
)


def columns(schema: T.StructType) -> list[tuple[str, T.DataType]]:
    """Names and types (nullability aside: Delta stores every column as nullable)."""
    return [(f.name, f.dataType) for f in schema.fields]


def feature_rows(day: date, songs_shift: int = 0) -> list[tuple[Any, ...]]:
    """20 users: songs 0..19 (+shift), thumbs down 0,1,2,3 repeating, gender F/M alternating."""
    return [
        (f"u{i:02d}", day, i + songs_shift, float(i % 4), "F" if i % 2 == 0 else "M")
        for i in range(USERS)
    ]


@dataclass
class Lake:
    root: Path
    cfg: Config
    name: str
    baseline: str
    spark_model: PipelineModel
    sk_model: SkPipeline
    spark_run_id: str


def register(client: Any, model_uri: str, name: str, tags: dict[str, str]) -> int:
    mv = mlflow.register_model(model_uri, name)
    for key, value in tags.items():
        client.set_model_version_tag(name, mv.version, key, value)
    return int(mv.version)


def build_lake(spark: SparkSession, root: Path) -> Lake:
    """A feature table (a training snapshot and a later one whose songs moved up by 100) and
    two registered models trained on the first: a Spark ML pipeline (champion) and a
    scikit-learn baseline, tagged as the model contract says."""
    cfg = load_config(CONF, [f"storage.root={root}"])
    features = spark.createDataFrame(
        feature_rows(TRAIN_DAY) + feature_rows(LATEST_DAY, songs_shift=100), FEATURE_SCHEMA
    )
    features.write.format("delta").partitionBy("snapshot_date").save(cfg.table("features"))
    features_version = storage.version(spark, cfg.table("features"))

    train = features.filter(F.col("snapshot_date") == TRAIN_DAY).withColumn(
        "churned", (F.col("songs_7d") < 6).cast("int")
    )
    spark_model = Pipeline(
        stages=[
            StringIndexer(inputCol="gender", outputCol="gender_idx", handleInvalid="keep"),
            VectorAssembler(inputCols=[*NUMERIC, "gender_idx"], outputCol="features"),
            LogisticRegression(labelCol="churned", regParam=0.1),
        ]
    ).fit(train)
    pdf = train.toPandas()
    sk_model = make_pipeline(
        make_column_transformer(
            (SimpleImputer(), NUMERIC), (OneHotEncoder(handle_unknown="ignore"), ["gender"])
        ),
        SkLogisticRegression(),
    ).fit(pdf[FEATURES], pdf["churned"])

    client = tracking.connect(cfg.mlflow, cfg.tracking_uri, cfg.artifact_location)
    name = cfg.mlflow.registered_model
    tags = {
        "threshold": "0.5",
        "entity_col": "user_id",
        "snapshot_col": "snapshot_date",
        "label_col": "churned",
        "features_path": cfg.table("features"),
        "features_version": str(features_version),
        "labels_path": cfg.table("labels"),
        "labels_version": "0",
        "train_snapshots": TRAIN_DAY.isoformat(),
        "validation_snapshots": "",
        "test_snapshots": "",
        "gate_decision": "promoted",
        "gate_reasons": "test",
        "test_roc_auc": "0.9",
        "test_pr_auc": "0.8",
    }
    signature = infer_signature(pdf[FEATURES])
    with mlflow.start_run() as run:
        mlflow.spark.log_model(
            spark_model,
            "model",
            signature=signature,
            input_example=None,
            pip_requirements=["pyspark==4.2.0"],
        )
    version = register(client, f"runs:/{run.info.run_id}/model", name, tags)
    client.set_registered_model_alias(name, "champion", version)

    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            sk_model,
            name="model",
            signature=infer_signature(pdf[FEATURES], sk_model.predict_proba(pdf[FEATURES])),
            pyfunc_predict_fn="predict_proba",
            pip_requirements=["scikit-learn==1.9.1"],
            skops_trusted_types=["numpy.dtype"],
        )
    register(client, info.model_uri, f"{name}-baseline", {**tags, "gate_decision": "baseline"})
    return Lake(root, cfg, name, f"{name}-baseline", spark_model, sk_model, run.info.run_id)


def cfg_for(lake: Lake, out: Path) -> Config:
    """The lake's config with its own scores and drift tables under `out`."""
    return load_config(
        CONF,
        [
            f"storage.root={lake.root}",
            f"tables.scores={out}/scores",
            f"tables.drift={out}/drift",
        ],
    )


def quiet() -> Report:
    return Report("score", stream=io.StringIO())


def read_scores(spark: SparkSession, cfg: Config) -> DataFrame:
    return storage.read(spark, cfg.table("scores"))
