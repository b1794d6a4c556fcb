"""`python -m lakeml.install`: the set-up `make install` runs once pip is done.

1. In a child process, run the event journey in small in a driver JVM that dumps its classes
   on exit: generate a few days of events and build their features. The first start resolves
   the Delta jars with Ivy (`core.session` remembers them), the run writes and reads back
   Delta tables (the install works), and the JVM writes the driver's class archive
   (`core.class_cache`) with the classes a real run loads (Delta, Parquet, JSON, the SQL
   engine).
2. Meanwhile, in this process, build the empty MLflow store that new SQLite stores are
   copied from (`tracking.store.store_template`).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
from typing import Any

WARM_UP_OVERRIDES = ["generate.users=6", "generate.days=16"]


def warm_up(conf: str, java_options: list[str]) -> str:
    """The journey in small, in a driver JVM started with `java_options`; returns, after that
    JVM has exited (it writes the class archive on exit), a line saying what it proved."""
    from lakeml import pipeline
    from lakeml.core.config import load_config
    from lakeml.core.report import Report
    from lakeml.core.session import delta_maven_coordinate, get_spark

    with tempfile.TemporaryDirectory() as root:
        cfg = load_config(conf, [f"storage.root={root}", *WARM_UP_OVERRIDES])
        # A few thousand lines: the JVM's quick compiler alone, as for any small input (the
        # archive records the classes loaded, which do not depend on the compiler).
        spark = get_spark(cfg.spark.model_copy(update={"jit": "quick"}), java_options)
        version = spark.version
        report = Report("install", stream=io.StringIO())
        generated = pipeline.run_generate(spark, cfg, report)
        features = pipeline.run_features(spark, cfg, report)
        jvm = spark.sparkContext._gateway.proc
        spark.stop()
        # The gateway JVM exits when its stdin closes (Spark's PythonGatewayServer).
        jvm.stdin.close()
        jvm.wait(timeout=600)
    return proven(version, delta_maven_coordinate(), generated.lines, features)


def proven(version: str, coordinate: str, lines: int, features: dict[str, Any]) -> str:
    """The warm-up's verdict on the install: the tables it wrote to Delta and read back hold
    rows (labels need a matured horizon, which a few days may not give), bronze holds every
    generated line and silver reconciles with it; anything else is a one-line error saying
    which."""
    tables, this_run = features["tables"], features["this_run"]
    empty = [name for name in ("bronze", "silver", "features") if not tables[name]["rows"]]
    faults = [f"{', '.join(empty)} empty"] if empty else []
    if this_run["bronze_rows"] != lines:
        faults.append(f"bronze took {this_run['bronze_rows']} of the {lines} generated lines")
    if not this_run["reconciles"]:
        faults.append("silver does not reconcile with bronze")
    if faults:
        raise SystemExit(
            f"install check failed: Spark {version} with Delta ({coordinate}) on {lines} "
            f"generated lines: {'; '.join(faults)}"
        )
    return (
        f"Spark {version} with Delta ({coordinate}): ok, {lines} generated lines -> "
        f"{tables['features']['rows']} feature rows, {tables['labels']['rows']} labels"
    )


def build_class_archive(conf: str) -> str:
    """Step 1 in a child process (its JVM must exit to write the archive), step 2 here while
    it runs: what each produced, one line each."""
    from lakeml.core import class_cache
    from lakeml.core.logs import quiet_python_loggers
    from lakeml.core.session import lakeml_cache_dir
    from lakeml.tracking.store import store_template

    quiet_python_loggers()  # MLflow's database-creation INFO lines are not for users
    cache = lakeml_cache_dir()
    made: list[str] = []

    def run(options: list[str]) -> None:
        command = [sys.executable, "-m", "lakeml.install", "--conf", conf, "--warm-up"]
        child = subprocess.Popen([*command, *[f"--java-option={o}" for o in options]])
        try:
            made.append(f"empty MLflow store: {store_template(cache)}")
        finally:
            if child.wait() != 0:
                raise SystemExit(f"install check failed: the warm-up run exited {child.returncode}")

    archive = class_cache.build(cache, run)
    if not made:  # no java found, so no archive run: the warm-up still checks the install
        run([])
    return "\n".join(
        [*made, f"class archive: {archive or 'not built (no java, or an older one?)'}"]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lakeml.install")
    parser.add_argument("--conf", default="conf/local.yaml")
    parser.add_argument("--warm-up", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--java-option", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.warm_up:
        print(warm_up(args.conf, args.java_option), flush=True)
        return
    print(build_class_archive(args.conf), flush=True)


if __name__ == "__main__":
    main()
