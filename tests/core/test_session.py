"""The session factory's quiet start-up and its reuse of resolved Delta jars."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from lakeml.core import class_cache, logs
from lakeml.core.config import SparkConfig
from lakeml.core.logs import (
    CHATTY_PYTHON_LOGGERS,
    INCUBATOR_WARNING,
    LOG4J2_PROPERTIES,
    STDERR_FILTER,
    quiet_python_loggers,
)
from lakeml.core.session import (
    build_conf,
    cached_jars,
    delta_maven_coordinate,
    remember_jars,
)

ROOT = Path(__file__).resolve().parents[2]
JAVA_OPTIONS = "spark.driver.defaultJavaOptions"
LOG4J_OPTION = f"-Dlog4j2.configurationFile={LOG4J2_PROPERTIES.as_uri()}"


@pytest.fixture
def launching(monkeypatch: pytest.MonkeyPatch) -> None:
    """lakeml launches the driver JVM itself (not spark-submit), with no Spark conf folder."""
    for name in ("PYSPARK_GATEWAY_PORT", "SPARK_CONF_DIR", "SPARK_HOME"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def jars(tmp_path: Path) -> list[str]:
    """Three jar files as Ivy retrieves them, and their list remembered in tmp_path/cache."""
    folder = tmp_path / "ivy" / "jars"
    folder.mkdir(parents=True)
    paths = []
    for name in ("io.delta_delta-spark.jar", "io.delta_delta-storage.jar", "org.x_y.jar"):
        (folder / name).write_bytes(b"PK")
        paths.append(str(folder / name))
    uris = ",".join(Path(p).as_uri() for p in paths)
    remember_jars(delta_maven_coordinate(), uris, "", tmp_path / "cache")
    return paths


def spark_config(**conf: str) -> SparkConfig:
    return SparkConfig(master="local[1]", log_level="ERROR", conf=conf)


def test_log4j_config_is_shipped_inside_the_package() -> None:
    text = LOG4J2_PROPERTIES.read_text()
    assert "rootLogger.level = ${sys:lakeml.log.level:-WARN}" in text
    assert "logger.netlib.name = dev.ludovic.netlib" in text


def test_driver_lakeml_launches_gets_the_quiet_log4j_config_at_the_configured_level(
    launching: None, tmp_path: Path
) -> None:
    options = build_conf(spark_config(), cache_dir=tmp_path)[JAVA_OPTIONS].split()
    assert LOG4J_OPTION in options
    assert "-Dlakeml.log.level=ERROR" in options


def test_under_spark_submit_the_conf_is_left_to_the_submit_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, jars: list[str]
) -> None:
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "4321")
    conf = build_conf(spark_config(), cache_dir=tmp_path / "cache")
    assert JAVA_OPTIONS not in conf
    assert conf["spark.jars.packages"] == delta_maven_coordinate()
    assert "spark.jars" not in conf


def test_users_extra_java_options_are_kept_and_apply_after_lakemls(
    launching: None, tmp_path: Path
) -> None:
    # Spark's launcher puts defaultJavaOptions before extraJavaOptions, so a user's own
    # -Dlog4j2.configurationFile there wins.
    user = "-Dlog4j2.configurationFile=file:/etc/mine.properties -XX:+UseG1GC"
    conf = build_conf(spark_config(**{"spark.driver.extraJavaOptions": user}), cache_dir=tmp_path)
    assert conf["spark.driver.extraJavaOptions"] == user
    assert LOG4J_OPTION in conf[JAVA_OPTIONS].split()


def test_users_default_java_options_replace_lakemls(launching: None, tmp_path: Path) -> None:
    conf = build_conf(spark_config(**{JAVA_OPTIONS: "-Dx=1"}), cache_dir=tmp_path)
    assert conf[JAVA_OPTIONS] == "-Dx=1"
    executors = "spark.executor.defaultJavaOptions"
    conf = build_conf(spark_config(**{executors: "-Dy=2"}), cache_dir=tmp_path)
    assert conf[executors] == "-Dy=2"


def test_driver_and_executors_compile_methods_of_any_size(launching: None, tmp_path: Path) -> None:
    for master in ("local[*]", "spark://10.0.0.5:7077"):
        conf = build_conf(SparkConfig(master=master), cache_dir=tmp_path)
        assert "-XX:-DontCompileHugeMethods" in conf[JAVA_OPTIONS].split()
        assert conf["spark.executor.defaultJavaOptions"] == "-XX:-DontCompileHugeMethods"


def test_a_log4j_config_in_the_spark_conf_folder_wins(
    launching: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "log4j2.properties").write_text("rootLogger.level = info\n")
    monkeypatch.setenv("SPARK_CONF_DIR", str(tmp_path))
    conf = build_conf(spark_config(), cache_dir=tmp_path)
    assert "log4j2.configurationFile" not in conf.get(JAVA_OPTIONS, "")


def test_netlib_skips_only_the_native_libraries_this_machine_lacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logs, "loadable", lambda library: library == "liblapack.so.3")
    assert logs.netlib_java_options("linux") == [
        "-Ddev.ludovic.netlib.blas.allowNative=false",
        "-Ddev.ludovic.netlib.arpack.allowNative=false",
    ]
    # Windows ships no default library name to probe.
    assert logs.netlib_java_options("win32") == []


def test_a_library_that_does_not_exist_is_not_loadable() -> None:
    assert not logs.loadable("liblakeml-no-such-library.so.9")


def test_remembered_jars_replace_the_ivy_resolution(
    launching: None, tmp_path: Path, jars: list[str]
) -> None:
    conf = build_conf(spark_config(), cache_dir=tmp_path / "cache")
    assert conf["spark.jars"] == ",".join(jars)
    assert "spark.jars.packages" not in conf


def test_a_users_own_jars_follow_the_remembered_ones(
    launching: None, tmp_path: Path, jars: list[str]
) -> None:
    conf = build_conf(spark_config(**{"spark.jars": "/opt/mine.jar"}), cache_dir=tmp_path / "cache")
    assert conf["spark.jars"] == ",".join([*jars, "/opt/mine.jar"])


def test_a_missing_jar_falls_back_to_the_maven_packages(
    launching: None, tmp_path: Path, jars: list[str]
) -> None:
    os.remove(jars[1])
    assert cached_jars(delta_maven_coordinate(), tmp_path / "cache") is None
    conf = build_conf(spark_config(), cache_dir=tmp_path / "cache")
    assert conf["spark.jars.packages"] == delta_maven_coordinate()
    assert "spark.jars" not in conf


def test_without_a_remembered_list_the_packages_are_resolved(
    launching: None, tmp_path: Path
) -> None:
    conf = build_conf(spark_config(), cache_dir=tmp_path / "empty")
    assert conf["spark.jars.packages"] == delta_maven_coordinate()


def test_users_own_packages_and_delta_packages_false_are_honoured(
    launching: None, tmp_path: Path, jars: list[str]
) -> None:
    packages = f"{delta_maven_coordinate()},org.x:y:1.0"
    conf = build_conf(
        spark_config(**{"spark.jars.packages": packages}), cache_dir=tmp_path / "cache"
    )
    assert conf["spark.jars.packages"] == packages
    assert "spark.jars" not in conf
    off = SparkConfig(master="local[1]", delta_packages=False)
    conf = build_conf(off, cache_dir=tmp_path / "cache")
    assert "spark.jars" not in conf
    assert "spark.jars.packages" not in conf


def test_only_the_resolved_local_jars_are_remembered(tmp_path: Path) -> None:
    a, mine = tmp_path / "a.jar", tmp_path / "mine.jar"
    a.write_bytes(b"PK")
    mine.write_bytes(b"PK")
    spark_jars = f"{mine.as_uri()},{a.as_uri()}"
    remember_jars("g:a:1", spark_jars, str(mine), tmp_path / "cache")
    assert cached_jars("g:a:1", tmp_path / "cache") == [str(a)]
    # A jar that is not a local file cannot be handed to spark.jars next time: remember nothing.
    remember_jars("g:b:1", f"{a.as_uri()},hdfs://nn/lib/b.jar", "", tmp_path / "cache")
    assert cached_jars("g:b:1", tmp_path / "cache") is None


@pytest.fixture
def chatty_loggers() -> Iterator[list[logging.Logger]]:
    loggers = [logging.getLogger(name) for name in CHATTY_PYTHON_LOGGERS]
    levels = [logger.level for logger in loggers]
    yield loggers
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def test_chatty_python_loggers_say_only_warnings(chatty_loggers: list[logging.Logger]) -> None:
    spark_logger, db_logger, alembic_logger, *xgboost_loggers = chatty_loggers
    for logger in [spark_logger, db_logger, *xgboost_loggers]:
        logger.setLevel(logging.NOTSET)
    alembic_logger.setLevel(logging.DEBUG)  # a user's own choice
    quiet_python_loggers()
    assert spark_logger.level == logging.WARNING
    assert db_logger.level == logging.WARNING
    assert alembic_logger.level == logging.DEBUG
    assert [logger.name for logger in xgboost_loggers] == [
        "XGBoost-PySpark",
        "SparkXGBClassifier",
        "SparkXGBClassifierModel",
    ]
    assert {logger.level for logger in xgboost_loggers} == {logging.WARNING}


def filtered(data: bytes) -> bytes:
    """`data` through the driver's stderr filter process."""
    command = [sys.executable, "-I", "-c", STDERR_FILTER, INCUBATOR_WARNING]
    return subprocess.run(command, input=data, capture_output=True, check=True).stdout


def test_the_stderr_filter_drops_the_jvms_incubator_warning_and_keeps_the_rest() -> None:
    """A real JVM with the module option Spark's launcher gives every driver."""
    java = subprocess.run(
        ["java", "--add-modules=jdk.incubator.vector", "-version"], capture_output=True
    )
    first, rest = java.stderr.split(b"\n", 1)
    assert first.startswith(b"WARNING: Using incubator modules: jdk.incubator.vector")
    assert b"version" in rest
    assert filtered(java.stderr) == rest


def test_the_stderr_filter_passes_other_bytes_unchanged() -> None:
    warning = b"WARNING: Using incubator modules: jdk.incubator.vector\n"
    binary = bytes(range(256)) * 1000  # not UTF-8, newlines inside, 256,000 bytes
    assert filtered(b"") == b""
    assert filtered(b"no newline at the end") == b"no newline at the end"
    assert filtered(b"a\n" + warning + binary) == b"a\n" + binary
    # Only among the first lines: later, the same text is someone else's output.
    late = b"".join(b"line %d\n" % i for i in range(8)) + warning
    assert filtered(late) == late
    assert filtered(binary) == binary


def test_a_session_starts_without_spark_or_ivy_banners(driver_start) -> None:
    """A real driver (`python -m lakeml.core.session`): everything it prints."""
    run = driver_start.run
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "with Delta" in run.stdout
    for banner in (
        "Using Spark's default log4j profile",
        "Setting default log level",
        "To adjust logging level use sc.setLogLevel",
        "NativeCodeLoader",
        "netlib",
        "Using incubator modules",
    ):
        assert banner not in output
    if driver_start.resolved_before:
        # Only the very first start on a machine resolves the Delta jars through Ivy.
        for ivy in (":: loading settings ::", ":: resolving dependencies ::", "Ivy Default Cache"):
            assert ivy not in output


def test_a_local_driver_binds_to_loopback_unless_config_says_otherwise(launching) -> None:
    local = build_conf(spark_config())
    assert local["spark.driver.bindAddress"] == local["spark.driver.host"] == "127.0.0.1"
    cluster = build_conf(spark_config(), master="spark://10.0.0.5:7077")
    assert "spark.driver.bindAddress" not in cluster and "spark.driver.host" not in cluster
    own = build_conf(spark_config(**{"spark.driver.bindAddress": "0.0.0.0"}))
    assert own["spark.driver.bindAddress"] == "0.0.0.0"


def test_the_local_driver_listens_on_loopback_only(spark) -> None:
    """`ss -ltnp` while a local session runs: every socket of its JVM is on 127.0.0.1."""
    pid = spark.sparkContext._gateway.proc.pid
    spark.range(10).selectExpr("id % 2 AS k").groupBy("k").count().collect()  # a shuffle
    lines = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    mine = [line.split() for line in lines.splitlines() if f"pid={pid}," in line]
    assert len(mine) >= 3, lines  # py4j gateway, driver RPC, block manager
    addresses = [fields[3].rsplit(":", 1)[0] for fields in mine]
    assert all(a in ("127.0.0.1", "[::ffff:127.0.0.1]") for a in addresses), addresses


@pytest.mark.parametrize(
    ("jit", "input_bytes", "master", "quick"),
    [
        ("auto", 8_363 * 450, "local[*]", True),  # 30 days of a small event log
        ("auto", 64 * 2**20 - 1, "local[2]", True),
        ("auto", 64 * 2**20, "local[2]", False),  # the 64 MB limit itself: both compilers
        ("auto", None, "local[*]", False),  # size unknown (remote, absent, no input)
        ("quick", None, "local[*]", True),
        ("full", 1_000, "local[*]", False),
        ("quick", 1_000, "spark://10.0.0.5:7077", False),  # a cluster's driver: left alone
    ],
)
def test_a_local_driver_on_a_small_input_gets_the_quick_compiler_alone(
    launching: None, tmp_path: Path, jit: str, input_bytes: int | None, master: str, quick: bool
) -> None:
    cfg = SparkConfig(master=master, log_level="ERROR", jit=jit)
    conf = build_conf(cfg, cache_dir=tmp_path, input_bytes=input_bytes)
    assert ("-XX:TieredStopAtLevel=1" in conf[JAVA_OPTIONS].split()) is quick
    assert LOG4J_OPTION in conf[JAVA_OPTIONS]  # lakeml's other options stay


def test_under_spark_submit_the_jit_is_left_to_the_submit_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "12345")
    conf = build_conf(SparkConfig(master="local[*]", jit="quick"), cache_dir=tmp_path)
    assert JAVA_OPTIONS not in conf and "spark.executor.defaultJavaOptions" not in conf


def test_this_java_accepts_the_quick_options_quietly(launching: None) -> None:
    """The options a quick local driver gets, on this machine's java (`-version`, no Spark):
    accepted without a word, and only the quick compiler left."""
    cfg = SparkConfig(master="local[*]", log_level="ERROR", jit="quick")
    options = build_conf(cfg)[JAVA_OPTIONS].split()
    java = class_cache.java_binary()
    assert java is not None
    flags = subprocess.run(
        [java, *options, "-XX:+PrintFlagsFinal", "-version"], capture_output=True, text=True
    )
    assert flags.returncode == 0, flags.stderr
    rows = [line.split() for line in flags.stdout.splitlines() if " = " in line]
    final = {row[1]: row[3] for row in rows}
    assert final["TieredStopAtLevel"] == "1"
    assert final["DontCompileHugeMethods"] == "false"
    assert "warning" not in flags.stderr.lower(), flags.stderr


def test_users_can_turn_dataframe_debugging_back_on(tmp_path: Path) -> None:
    off = build_conf(SparkConfig(master="local[*]"), cache_dir=tmp_path)
    assert off["spark.python.sql.dataFrameDebugging.enabled"] == "false"
    user = {"spark.python.sql.dataFrameDebugging.enabled": "true"}
    on = build_conf(SparkConfig(master="local[*]", conf=user), cache_dir=tmp_path)
    assert on["spark.python.sql.dataFrameDebugging.enabled"] == "true"


def test_a_column_expression_costs_no_call_site_round_trips(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`F.col("a").alias("b")` in lakeml's session: the `functions` class and its `col`
    member are looked up (two round trips), then `col` and `alias` are called (two more).
    With PySpark's DataFrame debugging on, `col` alone adds the active-session lookup, a
    conf read and the call-site set and clear around it."""
    from pyspark.sql import functions as F

    F.col("warm").alias("up")  # PySpark reads the debugging setting once per process
    client = spark.sparkContext._gateway._gateway_client
    commands: list[str] = []
    send = client.send_command

    def counted(command: str, *args, **kwargs):
        if not command.startswith("m"):  # memory commands: Python's GC of earlier proxies
            commands.append(command.replace("\n", " ")[:60])
        return send(command, *args, **kwargs)

    monkeypatch.setattr(client, "send_command", counted)
    F.col("a").alias("b")
    assert len(commands) == 4, commands


def assert_off_unless_the_user_turns_it_on(key: str, tmp_path: Path) -> None:
    """lakeml's session settings turn `key` off; a user's `spark.conf` turns it back on."""
    assert build_conf(SparkConfig(master="local[*]"), cache_dir=tmp_path)[key] == "false"
    on = build_conf(SparkConfig(master="local[*]", conf={key: "true"}), cache_dir=tmp_path)
    assert on[key] == "true"


def test_constraint_propagation_is_off_unless_the_user_turns_it_on(
    spark: SparkSession, tmp_path: Path
) -> None:
    key = "spark.sql.constraintPropagation.enabled"
    assert_off_unless_the_user_turns_it_on(key, tmp_path)

    def join_plan() -> str:  # an inner join on a nullable key
        left = spark.range(3).selectExpr("NULLIF(id, 1) AS k", "id AS v")
        right = spark.range(3).selectExpr("NULLIF(id, 2) AS k", "id AS w")
        return left.join(right, "k")._jdf.queryExecution().optimizedPlan().toString()

    # The suite's session came from lakeml's factory: the join's key gets no inferred
    # filter. The control: with it on, Spark infers one on each side (the key is not null,
    # pushed through NULLIF to `NOT (id = 1)` and `NOT (id = 2)`).
    assert spark.conf.get(key) == "false" and "Filter" not in join_plan()
    spark.conf.set(key, "true")
    try:
        assert join_plan().count("Filter NOT (id#") == 2
    finally:
        spark.conf.set(key, "false")


def _cached_bytes(spark: SparkSession, rows: int) -> int:
    """The memory a cached DataFrame of `rows` equal 100-character strings takes (what the
    session's caches grew by, so that another module's cache in this worker does not count)."""

    def in_memory() -> int:
        return sum(i.memSize() for i in spark.sparkContext._jsc.sc().getRDDStorageInfo())

    before = in_memory()
    df = spark.range(rows).selectExpr("repeat('a', 100) AS s").persist()
    try:
        df.count()
        return in_memory() - before
    finally:
        df.unpersist(blocking=True)


def test_cached_rows_are_kept_uncompressed_unless_the_user_says_otherwise(
    spark: SparkSession, tmp_path: Path
) -> None:
    key = "spark.sql.inMemoryColumnarStorage.compressed"
    assert_off_unless_the_user_turns_it_on(key, tmp_path)
    # The suite's session came from lakeml's factory: 20,000 strings of 100 bytes are kept
    # as they are (at least 2 MB). The control: compressed, one dictionary entry per batch
    # and its codes, well under a tenth of that.
    assert spark.conf.get(key) == "false"
    plain = _cached_bytes(spark, 20_000)
    assert plain >= 20_000 * 100
    spark.conf.set(key, "true")
    try:
        assert _cached_bytes(spark, 20_000) < plain / 10
    finally:
        spark.conf.set(key, "false")
