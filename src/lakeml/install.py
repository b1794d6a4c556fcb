"""`python -m lakeml.install`: the set-up `make install` runs once pip is done.

1. Start a session (Ivy resolves the Delta jars once, `core.session` remembers them) and
   round-trip a tiny Delta table: the install works.
2. Build the driver's class archive (`core.class_cache`) from a small run of the event
   journey in a child process: generate a few days of events and build their features, so
   the classes a real run loads (Delta, Parquet, JSON, the SQL engine) are in it.
3. Build the empty MLflow store that new SQLite stores are copied from
   (`tracking.store.store_template`).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile

WARM_UP_OVERRIDES = ["generate.users=6", "generate.days=16"]


def warm_up(conf: str, java_options: list[str]) -> None:
    """The journey in small, in a driver JVM started with `java_options`; returns after that
    JVM has exited (it writes the class archive on exit)."""
    from lakeml import pipeline
    from lakeml.core.config import load_config
    from lakeml.core.report import Report
    from lakeml.core.session import get_spark

    with tempfile.TemporaryDirectory() as root:
        cfg = load_config(conf, [f"storage.root={root}", *WARM_UP_OVERRIDES])
        spark = get_spark(cfg.spark, java_options)
        report = Report("install", stream=io.StringIO())
        pipeline.run_generate(spark, cfg, report)
        pipeline.run_features(spark, cfg, report)
        jvm = spark.sparkContext._gateway.proc
        spark.stop()
        # The gateway JVM exits when its stdin closes (Spark's PythonGatewayServer).
        jvm.stdin.close()
        jvm.wait(timeout=600)


def build_class_archive(conf: str) -> str:
    from lakeml.core import class_cache
    from lakeml.core.session import lakeml_cache_dir

    def run(options: list[str]) -> None:
        command = [sys.executable, "-m", "lakeml.install", "--conf", conf, "--warm-up"]
        subprocess.run([*command, *[f"--java-option={o}" for o in options]], check=True)

    archive = class_cache.build(lakeml_cache_dir(), run)
    return f"class archive: {archive}" if archive else "class archive: not built (no java?)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lakeml.install")
    parser.add_argument("--conf", default="conf/local.yaml")
    parser.add_argument("--warm-up", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--java-option", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.warm_up:
        warm_up(args.conf, args.java_option)
        return
    from lakeml.core.session import _smoke

    _smoke(["--conf", args.conf])
    print(build_class_archive(args.conf), flush=True)
    from lakeml.core.session import lakeml_cache_dir
    from lakeml.tracking.store import store_template

    print(f"empty MLflow store: {store_template(lakeml_cache_dir())}", flush=True)


if __name__ == "__main__":
    main()
