"""Scoring time over a plain Spark read+write of the same feature-like table, in one run.

`make bench` runs this. Under a temporary storage root it builds a ~100k-row feature-like Delta
table (one snapshot, 8 files like the feature job writes), trains and registers a small Spark
ML pipeline and a scikit-learn baseline, then times, each writing a Delta table:

- plain_copy: read the table, write it back (the floor any scoring pays);
- spark_model: the Spark model's own `transform`, P(churn) from its probability vector;
- pyfunc_defaults: `mlflow.pyfunc.spark_udf` as its docs show it, given only the result
  type (Spark's Arrow batch size, the input's own partitioning, default env manager);
- pyfunc_tuned: the UDF as lakeml runs it (env_manager=local, array<double>, Arrow batches of
  `score.arrow_batch_size`, spread to at least one partition per core);
- score_stage_*: the whole `lakeml score` stage (checks, ranks, Delta write, drift, MLflow).

Each timing is the best of `--repeats` runs (default 2), so neither side pays one-off Python
worker start-up. `--grid` adds pyfunc timings over Arrow batch sizes and partitionings.
Prints one JSON line with seconds and ratios over plain_copy.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from collections.abc import Callable

import mlflow
from mlflow.models import infer_signature
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import Imputer, OneHotEncoder, StringIndexer, VectorAssembler
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder as SkOneHotEncoder

from lakeml.core import storage
from lakeml.core.config import Config, load_config
from lakeml.core.report import Report
from lakeml.core.session import get_spark
from lakeml.pipeline import run_score
from lakeml.scoring import contract, model_ref, scorer
from lakeml.tracking import store as tracking

SNAPSHOT = "2018-12-01"
LONGS = [f"songs_{w}d" for w in (7, 14, 28)] + [f"sessions_{w}d" for w in (7, 14, 28)]
DOUBLES = [f"rate_{i}" for i in range(12)]
CATEGORICALS = ["gender", "state", "platform"]
FEATURES = LONGS + DOUBLES + CATEGORICALS


def feature_table(spark: SparkSession, rows: int) -> DataFrame:
    """A feature-like table: one snapshot, user ids, 18 numeric and 3 categorical columns."""
    ids = spark.range(rows)
    rnd = [F.rand(seed=i) for i in range(len(LONGS) + len(DOUBLES) + 1)]
    return ids.select(
        F.format_string("u%07d", F.col("id")).alias("user_id"),
        F.lit(SNAPSHOT).cast("date").alias("snapshot_date"),
        *[(rnd[i] * 200).cast("long").alias(c) for i, c in enumerate(LONGS)],
        *[
            F.when(rnd[len(LONGS) + i] > 0.02, rnd[len(LONGS) + i] * 3).alias(c)
            for i, c in enumerate(DOUBLES)
        ],
        F.when(F.col("id") % 2 == 0, "F").otherwise("M").alias("gender"),
        F.concat(F.lit("S"), (F.col("id") % 40).cast("string")).alias("state"),
        F.element_at(
            F.array(*map(F.lit, ["mac", "win", "linux", "ios"])), (F.col("id") % 4 + 1).cast("int")
        ).alias("platform"),
        (rnd[-1] < 0.2).cast("int").alias("churned"),
    )


def train_and_register(spark: SparkSession, cfg: Config, table: str) -> tuple[str, str]:
    """A Spark ML pipeline and a scikit-learn baseline on a sample, registered with the tags
    the model contract asks for; returns their model URIs."""
    df = spark.read.format("delta").load(table)
    sample = df.limit(5000).cache()
    indexed = [f"{c}_idx" for c in CATEGORICALS]
    pipeline = Pipeline(
        stages=[
            Imputer(inputCols=DOUBLES, outputCols=[f"{c}_imp" for c in DOUBLES]),
            StringIndexer(inputCols=CATEGORICALS, outputCols=indexed, handleInvalid="keep"),
            OneHotEncoder(inputCols=indexed, outputCols=[f"{c}_vec" for c in CATEGORICALS]),
            VectorAssembler(
                inputCols=LONGS
                + [f"{c}_imp" for c in DOUBLES]
                + [f"{c}_vec" for c in CATEGORICALS],
                outputCol="features",
                handleInvalid="keep",
            ),
            LogisticRegression(labelCol="churned", regParam=0.01, maxIter=20),
        ]
    ).fit(sample)
    pdf = sample.toPandas()
    sk = make_pipeline(
        make_column_transformer(
            (SimpleImputer(), LONGS + DOUBLES),
            (SkOneHotEncoder(handle_unknown="ignore"), CATEGORICALS),
        ),
        SkLogisticRegression(max_iter=200),
    ).fit(pdf[FEATURES], pdf["churned"])
    # Long columns as double in the signature: MLflow cannot pass nulls into integer columns.
    signature = infer_signature(pdf[FEATURES].astype({c: "float64" for c in LONGS}))
    client = tracking.connect(cfg.mlflow, cfg.tracking_uri, cfg.artifact_location)
    tags = {
        "threshold": "0.5",
        "entity_col": "user_id",
        "snapshot_col": "snapshot_date",
        "features_path": table,
        "features_version": str(storage.version(spark, table)),
        "train_snapshots": SNAPSHOT,
    }
    name = cfg.mlflow.registered_model
    with mlflow.start_run() as run:
        mlflow.spark.log_model(pipeline, "model", signature=signature, pip_requirements=["pyspark"])
    spark_uri = register(client, f"runs:/{run.info.run_id}/model", name, tags)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            sk,
            name="model",
            signature=infer_signature(
                pdf[FEATURES].astype({c: "float64" for c in LONGS}), sk.predict_proba(pdf[FEATURES])
            ),
            pyfunc_predict_fn="predict_proba",
            pip_requirements=["scikit-learn"],
            skops_trusted_types=["numpy.dtype"],
        )
    pyfunc_uri = register(client, info.model_uri, f"{name}-baseline", tags)
    sample.unpersist()
    return spark_uri, pyfunc_uri


def register(client: mlflow.MlflowClient, source: str, name: str, tags: dict[str, str]) -> str:
    mv = mlflow.register_model(source, name)
    for key, value in tags.items():
        client.set_model_version_tag(name, mv.version, key, value)
    return f"models:/{name}/{mv.version}"


def best_of(repeats: int, action: Callable[[int], None]) -> float:
    times = []
    for i in range(repeats):
        t0 = time.monotonic()
        action(i)
        times.append(time.monotonic() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="score_bench")
    parser.add_argument("conf", nargs="?", default="conf/local.yaml")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--grid", action="store_true")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as root:
        cfg = load_config(args.conf, [f"storage.root={root}"])
        spark = get_spark(cfg.spark)
        source = cfg.table("features")
        table = feature_table(spark, args.rows)
        table.drop("churned").repartition(8).write.format("delta").partitionBy(
            "snapshot_date"
        ).save(source)
        table.write.format("delta").save(f"{root}/labelled")
        spark_uri, pyfunc_uri = train_and_register(spark, cfg, f"{root}/labelled")
        spark.range(10).write.format("delta").save(f"{root}/warmup")
        client = tracking.connect(cfg.mlflow, cfg.tracking_uri, cfg.artifact_location)
        features = [
            model_ref.Feature(c, "double" if c in LONGS + DOUBLES else "string") for c in FEATURES
        ]
        n = 0

        def out() -> str:
            nonlocal n
            n += 1
            return f"{root}/out/{n}"

        def read() -> DataFrame:
            return spark.read.format("delta").load(source)

        def plain(_: int) -> None:
            read().write.format("delta").save(out())

        def spark_model(_: int) -> None:
            model = mlflow.spark.load_model(spark_uri)
            conformed = contract.conform_input(read(), features, "user_id", "snapshot_date")
            scorer.spark_model_probability(model, conformed, "user_id").write.format("delta").save(
                out()
            )

        def pyfunc_defaults(_: int) -> None:
            # The result type is the one setting needed: inferred from the (-1, 2) tensor
            # output it becomes array<array<double>> and the UDF fails on every batch.
            udf = mlflow.pyfunc.spark_udf(spark, pyfunc_uri, result_type="array<double>")
            df = read()
            df.select(
                "user_id",
                udf(
                    F.struct(
                        *[
                            F.col(c).cast("double").alias(c) if c in LONGS else F.col(c)
                            for c in FEATURES
                        ]
                    )
                ).alias("p"),
            ).write.format("delta").save(out())

        def pyfunc(batch: int | None, spread: bool) -> Callable[[int], None]:
            def action(_: int) -> None:
                settings = {scorer.ARROW_BATCH_CONF: str(batch)} if batch else {}
                ref = model_ref.resolve_model(client, pyfunc_uri)
                info = mlflow.models.get_model_info(ref.load_uri)
                conformed = contract.conform_input(read(), features, "user_id", "snapshot_date")
                with scorer.sql_conf(spark, settings):
                    if spread:
                        probs, _ = scorer.predict(spark, info, ref, conformed, features, "user_id")
                    else:
                        udf = mlflow.pyfunc.spark_udf(
                            spark, ref.load_uri, result_type="array<double>", env_manager="local"
                        )
                        probs = scorer.pyfunc_probability(udf, conformed, "user_id", features, True)
                    probs.write.format("delta").save(out())

            return action

        stage_parts: dict[str, dict[str, float]] = {}

        def stage(uri: str, key: str) -> Callable[[int], None]:
            def action(_: int) -> None:
                report = Report("bench", stream=io.StringIO())
                run_score(spark, cfg, report, model_uri=uri)
                # The score and drift stages' own seconds, of the last repeat.
                stage_parts[key] = report.summary["stage_seconds"]

            return action

        r = args.repeats
        seconds = {
            "plain_copy": best_of(r, plain),
            "spark_model": best_of(r, spark_model),
            "pyfunc_defaults": best_of(r, pyfunc_defaults),
            "pyfunc_tuned": best_of(r, pyfunc(cfg.score.arrow_batch_size, True)),
            "score_stage_spark": best_of(r, stage(spark_uri, "score_stage_spark")),
            "score_stage_pyfunc": best_of(r, stage(pyfunc_uri, "score_stage_pyfunc")),
        }
        if args.grid:
            for batch in (10_000, 50_000, 200_000):
                for spread in (False, True):
                    key = f"pyfunc_batch{batch}_{'per_core' if spread else 'as_read'}"
                    seconds[key] = best_of(r, pyfunc(batch, spread))
        files = len(read().inputFiles())
        spark.stop()
    plain_s = seconds["plain_copy"]
    result = {
        "rows": args.rows,
        "input_files": files,
        "arrow_batch_size": cfg.score.arrow_batch_size,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "stage_seconds_last_repeat": stage_parts,
        "over_plain_copy": {
            k: round(v / plain_s, 1) for k, v in seconds.items() if k != "plain_copy"
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
