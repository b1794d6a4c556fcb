"""The one SparkSession factory: Delta configured, quiet, settings from config.

Under `spark-submit` the master, jars and resources come from the submit command;
the factory only adds what is missing, so the same code runs locally and on a cluster.
"""

from __future__ import annotations

import os
import socket
import sys
from importlib import metadata

from pyspark.sql import SparkSession

from lakeml.core.config import SparkConfig
from lakeml.core.errors import LakemlError

# Fail fast on a Spark standalone master that is not there. Spark's standalone client
# retries registering with the master three times, 20 s apart (fixed in
# `StandaloneAppClient`, no setting changes it), and then fails with an unrelated "stopped
# SparkContext" error. A plain TCP connect to the master's port answers the same question
# in a few seconds, before any session exists. Per master address; a live master on the
# same network accepts a connection in milliseconds.
CONNECT_TIMEOUT_SECONDS = 5.0


def master_addresses(master: str) -> list[tuple[str, int]]:
    """(host, port) pairs of a standalone master URL, `spark://h:p` or `spark://h1:p1,h2:p2`
    (standby masters); an empty list for every other master (local, yarn, k8s://...)."""
    if not master.startswith("spark://"):
        return []
    addresses = []
    for part in master.removeprefix("spark://").split(","):
        host, sep, port = part.strip().rstrip("/").rpartition(":")
        if not sep or not host or not port.isdigit():
            raise LakemlError(
                f"Spark master URL {master!r} is malformed; write spark://host:port "
                "(e.g. spark://10.0.0.5:7077)"
            )
        addresses.append((host.strip("[]"), int(port)))
    return addresses


def check_master_reachable(master: str, timeout_seconds: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """Raise `LakemlError` unless some address of a `spark://` master accepts a TCP connection.

    Takes at most `timeout_seconds` per address; other masters are not checked.
    """
    failures = []
    for host, port in master_addresses(master):
        try:
            with socket.create_connection((host, port), timeout=timeout_seconds):
                return
        except OSError as exc:
            failures.append(f"{host}:{port}: {exc.strerror or exc}")
    if failures:
        raise LakemlError(
            f"Spark master {master} is unreachable ({'; '.join(failures)}); start the master "
            "or fix the URL given to spark-submit --master or spark.master (SPARK_MASTER_URL)"
        )


def submitted_master() -> str:
    """The master spark-submit was given (it lives in the driver JVM's conf, which exists
    before any session under spark-submit)."""
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()
    return SparkConf().get("spark.master", "")


DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

# Sensible defaults for a small machine; config `spark.conf` overrides any of them.
DEFAULT_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.adaptive.enabled": "true",
    # Delta reads its log with this many tasks; the default 50 is built for big tables.
    "spark.databricks.delta.snapshotPartitions": "4",
}


def delta_maven_coordinate() -> str:
    """The Maven coordinate of the Delta jar that matches the installed delta-spark and pyspark."""
    import pyspark

    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    return f"io.delta:delta-spark_{spark_minor}_2.13:{metadata.version('delta-spark')}"


def under_spark_submit() -> bool:
    """True when spark-submit launched this driver (the JVM and its conf already exist)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_conf(cfg: SparkConfig) -> dict[str, str]:
    """All settings the factory gives the builder, in the order they apply."""
    conf: dict[str, str] = {**DEFAULT_CONF, **DELTA_CONF}
    if cfg.delta_packages:
        conf["spark.jars.packages"] = delta_maven_coordinate()
    conf.update({k: str(v) for k, v in cfg.conf.items()})
    return conf


def get_spark(cfg: SparkConfig) -> SparkSession:
    """Create (or return the active) SparkSession for this config."""
    # Executors run the same interpreter as the driver unless the environment says otherwise.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    # A standalone master that is not there would otherwise cost Spark's 60 s of retries.
    check_master_reachable(submitted_master() if under_spark_submit() else cfg.master)
    builder = SparkSession.builder.appName(cfg.app_name)
    if not under_spark_submit():
        # A master given to spark-submit wins; config's master only applies when we launch.
        builder = builder.master(cfg.master)
    for key, value in build_conf(cfg).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(cfg.log_level)
    return spark


def _smoke(argv: list[str] | None = None) -> None:
    """`python -m lakeml.core.session`: start a session once (fetching the Delta jars) and
    round-trip a tiny Delta table, proving the install works."""
    import argparse
    import tempfile

    from lakeml.core.config import load_config

    parser = argparse.ArgumentParser(prog="python -m lakeml.core.session")
    parser.add_argument("--conf", default="conf/local.yaml")
    args = parser.parse_args(argv)
    spark = get_spark(load_config(args.conf).spark)
    with tempfile.TemporaryDirectory() as tmp:
        spark.range(3).write.format("delta").save(f"{tmp}/t")
        rows = spark.read.format("delta").load(f"{tmp}/t").count()
    spark.stop()
    print(f"Spark {spark.version} with Delta ({delta_maven_coordinate()}): ok, {rows} rows")


if __name__ == "__main__":
    _smoke()
