"""The one SparkSession factory: Delta configured, quiet, settings from config.

Under `spark-submit` the master, jars and resources come from the submit command;
the factory only adds what is missing, so the same code runs locally and on a cluster.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from pyspark import SparkContext
from pyspark.sql import SparkSession

from lakeml.core import class_cache
from lakeml.core.config import SparkConfig
from lakeml.core.errors import LakemlError
from lakeml.core.logs import (
    INCUBATOR_WARNING,
    STDERR_FILTER,
    driver_java_options,
    quiet_python_loggers,
)
from lakeml.core.paths import local_path

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
    # PySpark's DataFrame debugging sends the Python call site to the JVM around every
    # column function: about ten extra py4j round trips each. The gold plan of the Sparkify
    # preset took 17,331 round trips with it and 7,017 without; error messages lose only the
    # Python file and line of lakeml's own expression code.
    "spark.python.sql.dataFrameDebugging.enabled": "false",
    # The optimizer's constraint propagation grows with every alias of a column that a
    # predicate names, and silver's judged events alias each parsed field several times:
    # planning the de-duplication of two judged Sparkify lines took 8.7-10 s in the rule
    # PruneFilters alone (0.65 s for the whole optimizer without it), and a second such
    # plan ran the driver out of its 1 GB heap. What it infers (IS NOT NULL filters for
    # joins) lakeml's plans do not need.
    "spark.sql.constraintPropagation.enabled": "false",
    # A cached DataFrame (silver's judged batch, the training rows) is kept as plain column
    # batches: encoding each batch costs more CPU than a small machine gets back. Caching
    # and counting the judged Sparkify batch at 10x (4.8M lines) took 47-52 s this way
    # against 59-70 s compressed; the rows take more memory, and spill to disk when it is
    # short (DataFrame caches are MEMORY_AND_DISK).
    "spark.sql.inMemoryColumnarStorage.compressed": "false",
}


def delta_maven_coordinate() -> str:
    """The Maven coordinate of the Delta jar that matches the installed delta-spark and pyspark."""
    import pyspark

    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    return f"io.delta:delta-spark_{spark_minor}_2.13:{metadata.version('delta-spark')}"


def under_spark_submit() -> bool:
    """True when spark-submit launched this driver (the JVM and its conf already exist)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


# spark.jars.packages makes every start resolve the Delta jars with Ivy again, even when all 33
# are in the local Ivy cache: 2-7 s (Ivy's own "resolve" time on a busy 2-core machine, 3-6 s of
# JVM CPU) and a page of output.
# So after one resolution the factory remembers the jar files Ivy retrieved, and later starts
# hand them to spark.jars directly. (Python's `delta` then comes from the delta-spark wheel of
# the same version, not from the jar that spark.jars.packages also puts on sys.path.)
def lakeml_cache_dir() -> Path:
    """lakeml's cache folder: remembered jar lists, the driver's class archive."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lakeml"


def jar_cache_dir() -> Path:
    """Where lakeml remembers the jar files resolved for a Maven coordinate."""
    return lakeml_cache_dir() / "jars"


def _jar_list(coordinate: str, cache_dir: Path) -> Path:
    return cache_dir / f"{coordinate.replace(':', '_')}.txt"


def cached_jars(coordinate: str, cache_dir: Path) -> list[str] | None:
    """The jar files an earlier run resolved for `coordinate`, or None unless all still exist."""
    try:
        jars = _jar_list(coordinate, cache_dir).read_text().splitlines()
    except OSError:
        return None
    return jars if jars and all(os.path.isfile(jar) for jar in jars) else None


def remember_jars(coordinate: str, spark_jars: str, user_jars: str, cache_dir: Path) -> None:
    """Record the jars spark.jars.packages added to `spark_jars` (the user's own left out).

    Best effort: remembering only saves time, so a remote jar or an unwritable cache skips it.
    """
    own = {local_path(jar) for jar in user_jars.split(",") if jar}
    jars = [local_path(jar) for jar in spark_jars.split(",") if jar]
    resolved = [jar for jar in jars if jar not in own]
    if not resolved or None in resolved:
        return
    target = _jar_list(coordinate, cache_dir)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text("\n".join(str(jar) for jar in resolved) + "\n")
        partial.replace(target)
    except OSError:
        pass


# A driver on the machine's own loopback: in local mode nothing outside it must reach the
# driver's RPC endpoint or block manager (Spark binds them to the network address otherwise).
LOOPBACK_CONF = {"spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1"}


def is_local(master: str) -> bool:
    return master == "local" or master.startswith("local[")


# The JVM's quick compiler (C1) alone. A local driver on a small input spends most of its CPU
# warming up, and the optimizing compiler (C2) costs more CPU than its faster code saves:
# `lakeml features` on 8,363 event lines or a 10,000-row table took a fifth to a third less
# time this way, and was even at 202 MB of events (README, "Other tables by configuration").
QUICK_JIT = "-XX:TieredStopAtLevel=1"
QUICK_JIT_MAX_BYTES = 64 * 2**20
# HotSpot leaves a method of more than 8,000 bytes of bytecode interpreted, and Spark's
# whole-stage code for a wide projection passes that (Spark's own limit is 65,535): silver's
# judging of a 39-field JSON log (1M lines) ran 14.7 s to a no-op sink without this option and
# 6.7 s with it, silver whole 22.4 s and 15.2 s (a warm local driver, 2026-12-06). On the
# 18-field Sparkify log, whose generated methods stay under the limit, it changed nothing.
COMPILE_HUGE_METHODS = "-XX:-DontCompileHugeMethods"
DRIVER_JAVA_OPTIONS = "spark.driver.defaultJavaOptions"
EXECUTOR_JAVA_OPTIONS = "spark.executor.defaultJavaOptions"


def quick_jit(cfg: SparkConfig, input_bytes: int | None) -> bool:
    """Whether a local driver gets `QUICK_JIT`: `spark.jit` quick, or auto with an input of
    known size under `QUICK_JIT_MAX_BYTES` (an unknown size keeps both compilers)."""
    if cfg.jit == "auto":
        return input_bytes is not None and input_bytes < QUICK_JIT_MAX_BYTES
    return cfg.jit == "quick"


def build_conf(
    cfg: SparkConfig,
    cache_dir: Path | None = None,
    master: str | None = None,
    java_options: list[str] | None = None,
    input_bytes: int | None = None,
) -> dict[str, str]:
    """All settings the factory gives the builder, in the order they apply.

    With a local master (`master`, else the config's) the driver binds to the loopback
    address only, unless the config sets spark.driver.bindAddress / spark.driver.host.

    Only when lakeml launches the driver JVM itself (not under spark-submit): the Delta jars come
    from an earlier run's resolution when it is complete, and the driver gets lakeml's quiet
    log4j2 config and the class archive (`class_cache`, or `java_options` if given) through
    spark.driver.defaultJavaOptions (so a user's own spark.driver.extraJavaOptions still
    apply, after it; a user's defaultJavaOptions replace it). Driver and executors compile
    methods of any size (`COMPILE_HUGE_METHODS`). A local driver also gets the quick
    compiler alone when `quick_jit` says so for the command's `input_bytes`.
    """
    conf: dict[str, str] = {**DEFAULT_CONF, **DELTA_CONF}
    local = is_local(cfg.master if master is None else master)
    if local:
        conf.update(LOOPBACK_CONF)
    user = {k: str(v) for k, v in cfg.conf.items()}
    launching = not under_spark_submit()
    if cfg.delta_packages:
        coordinate = delta_maven_coordinate()
        reuse = launching and "spark.jars.packages" not in user
        jars = cached_jars(coordinate, cache_dir or jar_cache_dir()) if reuse else None
        if jars:
            conf["spark.jars"] = ",".join([*jars, *filter(None, [user.pop("spark.jars", "")])])
        else:
            conf["spark.jars.packages"] = coordinate
    if launching and DRIVER_JAVA_OPTIONS not in user:
        if java_options is None:
            java_options = class_cache.java_options(
                cache_dir.parent if cache_dir else lakeml_cache_dir()
            )
        jit = [QUICK_JIT] if local and quick_jit(cfg, input_bytes) else []
        quiet = driver_java_options(cfg.log_level)
        options = [quiet, *java_options, COMPILE_HUGE_METHODS, *jit]
        conf[DRIVER_JAVA_OPTIONS] = " ".join(filter(None, options))
    if launching and EXECUTOR_JAVA_OPTIONS not in user:
        conf[EXECUTOR_JAVA_OPTIONS] = COMPILE_HUGE_METHODS
    conf.update(user)
    return conf


def task_slots(spark: SparkSession) -> int:
    """Tasks the session can run at once now (local[N]: N; a cluster: its executors'
    cores). Spark's own count; a barrier stage wider than this waits instead of failing."""
    sc = spark.sparkContext._jsc.sc()
    return int(sc.maxNumConcurrentTasks(sc.resourceProfileManager().resourceProfileFromId(0)))


# The filters of the drivers this process launched: each runs as long as its JVM.
_stderr_filters: list[subprocess.Popen[bytes]] = []


@contextmanager
def driver_stderr_filtered() -> Iterator[None]:
    """While a driver JVM is launched from here: this process's stderr (file descriptor 2,
    which the JVM inherits) is the `STDERR_FILTER` process, which writes to the real one.
    Nothing changes under spark-submit, with a JVM already running, or off POSIX."""
    if under_spark_submit() or SparkContext._gateway is not None or os.name != "posix":
        yield
        return
    sys.stderr.flush()
    try:
        stderr_filter = subprocess.Popen(
            [sys.executable, "-I", "-c", STDERR_FILTER, INCUBATOR_WARNING],
            stdin=subprocess.PIPE,
            stdout=2,
        )
    except OSError:
        yield
        return
    _stderr_filters.append(stderr_filter)
    assert stderr_filter.stdin is not None
    saved = os.dup(2)
    os.dup2(stderr_filter.stdin.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        stderr_filter.stdin.close()


def get_spark(
    cfg: SparkConfig, java_options: list[str] | None = None, input_bytes: int | None = None
) -> SparkSession:
    """Create (or return the active) SparkSession for this config (`java_options` and
    `input_bytes`, the size of the command's input when known: see `build_conf`)."""
    quiet_python_loggers()
    # Executors run the same interpreter as the driver unless the environment says otherwise.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    # A standalone master that is not there would otherwise cost Spark's 60 s of retries.
    master = submitted_master() if under_spark_submit() else cfg.master
    check_master_reachable(master)
    builder = SparkSession.builder.appName(cfg.app_name)
    if not under_spark_submit():
        # A master given to spark-submit wins; config's master only applies when we launch.
        builder = builder.master(cfg.master)
    conf = build_conf(cfg, master=master, java_options=java_options, input_bytes=input_bytes)
    for key, value in conf.items():
        builder = builder.config(key, value)
    # spark.jars.packages is resolved once per JVM, by the spark-submit that launches it.
    resolves_packages = not under_spark_submit() and SparkContext._gateway is None
    with driver_stderr_filtered():
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(cfg.log_level)
    coordinate = conf.get("spark.jars.packages")
    if resolves_packages and coordinate == delta_maven_coordinate():
        # This start resolved the Delta jars (into spark.jars): the next can skip Ivy.
        spark_jars = spark.sparkContext.getConf().get("spark.jars", "")
        remember_jars(coordinate, spark_jars, conf.get("spark.jars", ""), jar_cache_dir())
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
