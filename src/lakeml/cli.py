"""`lakeml <command> --conf conf/local.yaml [--set k=v ...]`; jobs/*.py call `main` too.

Each command loads the config, opens the SparkSession, runs one library function and
prints progress lines followed by a one-line JSON summary, also when it fails. A failure
is one line on stderr, never a traceback (`lakeml.core.failures` maps every exception):
a mistake the user can fix (a `LakemlError`, a lost or unreadable file, ...) exits with
status 2, anything else with status 1 and the path of a log file with the traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from typing import Any

from lakeml.core import failures
from lakeml.core.config import Config, load_config
from lakeml.core.errors import LakemlError
from lakeml.core.report import Report
from lakeml.core.secrets import RedactingStream


def _features(spark: Any, cfg: Config, args: argparse.Namespace, report: Report) -> None:
    from lakeml.pipeline import run_features

    run_features(spark, cfg, report, input_path=args.input, full_refresh=args.full_refresh)


def _generate(spark: Any, cfg: Config, args: argparse.Namespace, report: Report) -> None:
    from lakeml.pipeline import run_generate

    run_generate(spark, cfg, report, output=args.output)


def _train(spark: Any, cfg: Config, args: argparse.Namespace, report: Report) -> None:
    from lakeml.pipeline import run_train

    run_train(spark, cfg, report)


def _models(spark: Any, cfg: Config, args: argparse.Namespace, report: Report) -> None:
    from lakeml.pipeline import run_models

    run_models(cfg, report)


def _promote(spark: Any, cfg: Config, args: argparse.Namespace, report: Report) -> None:
    from lakeml.pipeline import run_promote

    run_promote(cfg, report, version=args.version, alias=args.alias)


def _score(spark: Any, cfg: Config, args: argparse.Namespace, report: Report) -> None:
    from lakeml.pipeline import run_score

    run_score(
        spark,
        cfg,
        report,
        model_uri=args.model_uri,
        snapshot_date=args.snapshot_date,
        input_path=args.input,
    )


def _pipeline(spark: Any, cfg: Config, args: argparse.Namespace, report: Report) -> None:
    from lakeml.pipeline import run_pipeline

    run_pipeline(spark, cfg, report, input_path=args.input, until=args.until)


def _serve(spark: Any, cfg: Config, args: argparse.Namespace, report: Report) -> None:
    from lakeml.pipeline import run_serve

    run_serve(cfg, report, host=args.host, port=args.port)


def _report(spark: Any, cfg: Config, args: argparse.Namespace, report: Report) -> None:
    from lakeml.pipeline import run_report

    run_report(spark, cfg, report, args.model_uri, args.snapshot_date, args.format)


def _monitor(spark: Any, cfg: Config, args: argparse.Namespace, report: Report) -> None:
    from lakeml.pipeline import run_monitor

    run_monitor(spark, cfg, report)


def _retrain(spark: Any, cfg: Config, args: argparse.Namespace, report: Report) -> None:
    from lakeml.pipeline import run_retrain

    run_retrain(spark, cfg, report, force=args.force)


Command = Callable[[Any, Config, argparse.Namespace, Report], None]
# Commands that only talk to MLflow need no SparkSession.
NO_SPARK = {"models", "promote", "serve"}
# Commands whose input is the raw source (`--input`, else source.path).
READS_SOURCE = {"features", "pipeline"}


def input_bytes(args: argparse.Namespace, cfg: Config) -> int | None:
    """The size of what a features or pipeline run (the raw input) or a score run (the table
    it scores: `--input`, else the features table) reads, when it is local and there (the
    session factory picks the driver's JIT by it: `spark.jit`); None otherwise."""
    if args.command in READS_SOURCE:
        path = args.input or cfg.source_path
    elif args.command == "score":
        path = args.input or cfg.table("features")
    else:
        return None
    from lakeml.core.paths import local_bytes

    return local_bytes(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lakeml", description="Churn features, models and scores on Spark, Delta and MLflow."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--conf", default="conf/local.yaml", help="YAML config (default: %(default)s)"
        )
        p.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config key, e.g. --set storage.root=/tmp/x (repeatable)",
        )
        p.set_defaults(func=func)
        return p

    p = add("generate", _generate, "write synthetic Sparkify-schema event logs, one file per day")
    p.add_argument("--output", help="folder to write to (default: source.path)")
    p = add("features", _features, "raw events -> bronze -> silver (+quarantine) -> gold tables")
    p.add_argument("--input", help="raw events folder (default: source.path)")
    p.add_argument("--full-refresh", action="store_true", help="recompute every snapshot")
    add("train", _train, "train, evaluate, log and register churn models; gate the champion")
    add("models", _models, "list registered model versions, aliases and key metrics")
    p = add("promote", _promote, "point an alias (default champion) at a model version")
    p.add_argument("--version", required=True, help="model version to promote")
    p.add_argument("--alias", default="champion")
    p = add("score", _score, "batch-score a snapshot (or any table) with a registered model")
    p.add_argument("--model-uri", help="default: models:/<registered_model>@champion")
    p.add_argument("--snapshot-date", help="YYYY-MM-DD (default: the latest snapshot)")
    p.add_argument("--input", help="a Delta or Parquet table to score instead of the features")
    p = add("pipeline", _pipeline, "generate (if no input) -> features -> train -> gate -> score")
    p.add_argument("--input", help="raw events folder (default: source.path)")
    p.add_argument(
        "--until",
        choices=("features", "train", "score"),
        default="score",
        help="stop after this step (default: %(default)s)",
    )
    p = add("report", _report, "a stakeholder report (HTML or Markdown) of a model's scoring")
    p.add_argument("--model-uri", help="default: models:/<registered_model>@champion")
    p.add_argument("--snapshot-date", help="YYYY-MM-DD (default: the latest it scored)")
    p.add_argument("--format", choices=("html", "md"), default="html")
    add(
        "monitor",
        _monitor,
        "realized performance, then SLA checks; exit 0 all hold, 1 a check failed, 2 an error",
    )
    p = add("retrain", _retrain, "train if the champion is too old, underperforms or drifted")
    p.add_argument("--force", action="store_true", help="train whatever the policy says")
    p = add("serve", _serve, "serve scores and live predictions over HTTP (no JVM)")
    p.add_argument("--host", help="address to bind (default: serve.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: serve.port, 8000)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Progress lines and the JSON summary go out without secrets or URI passwords.
    out = RedactingStream(sys.stdout)
    report = Report(args.command, stream=out)
    cfg: Config | None = None
    spark, created = None, False
    try:
        cfg = load_config(args.conf, args.overrides)
        out.redact = cfg.redact
        if args.command == "train":
            # What the Delta logs and the tracking server already tell, before a JVM starts.
            from lakeml.pipeline import preflight_train

            preflight_train(cfg)
        if args.command not in NO_SPARK:
            from pyspark.sql import SparkSession

            from lakeml.core.session import get_spark

            # A session already running in this process (a notebook, a test, a scheduler
            # task) is used as it is and left running; only a session started here is stopped.
            spark = SparkSession.getActiveSession()
            if spark is None:
                spark, created = get_spark(cfg.spark, input_bytes=input_bytes(args, cfg)), True
        args.func(spark, cfg, args, report)
    except (Exception, KeyboardInterrupt) as exc:
        # Described while the session still runs: a Java exception's text comes from the JVM.
        return fail(exc, args.command, cfg, report, out)
    finally:
        if spark is not None and created:
            spark.stop()
    report.finish()
    return report.exit_status


def fail(
    exc: BaseException, command: str, cfg: Config | None, report: Report, out: RedactingStream
) -> int:
    """Say what went wrong in one line on stderr and in the JSON summary; the exit status."""
    log = None
    if not isinstance(exc, (LakemlError, KeyboardInterrupt)):
        root = cfg.storage.root if cfg is not None else None
        log = failures.write_log(exc, command, root, out.redact)
    tables = {} if cfg is None else {n: cfg.table(n) for n in type(cfg.tables).model_fields}
    failure = failures.describe(exc, tables, log)
    if command == "monitor" and failure.status == 1:
        # For monitor, 1 means a check failed: every error is 2.
        failure = dataclasses.replace(failure, status=2)
    print(f"lakeml {command}: {out.redact(failure.line)}", file=sys.stderr, flush=True)
    report.fail(failure.message, failure.status, log)
    return failure.status


def entrypoint() -> None:
    """Console script `lakeml`."""
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
