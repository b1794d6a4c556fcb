"""Time and work of the ingest stages against a plain Spark copy of the same data, in one run.

`python bench/ingest_bench.py [--repeat 2]` starts one SparkSession (timed: the JVM start a
fresh `lakeml features` pays), warms the JVM with a tiny Delta write and read (timed: paid
once per process too), writes 30 daily eventsim files (~8,000 events) under a temporary
root, then times (a) `spark.read.text(raw).write.format("delta")`, (b) bronze.ingest and
(c) silver.update, then reruns with nothing new and with one new day. It then builds a
10,000-row customer CSV from the Telco sample (rows repeated under new customerIDs) and
times the customer table step, first run and rerun. Each step prints its seconds, CPU
seconds (this process and the JVM), Spark jobs (counted by job group) and Delta commits
(table versions added); all steps run `--repeat` times on fresh tables and the last line
(JSON) keeps the least time of each. Last, `lakeml features --conf conf/telco.yaml` runs on
that CSV as users run it (a new process: JVM start included), with `spark.jit` as shipped
(auto: the quick compiler alone) and with both compilers (`full`).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from lakeml.core import storage
from lakeml.core.config import GenerateConfig, load_config
from lakeml.core.session import get_spark
from lakeml.ingest import bronze, customer_table, silver
from lakeml.synthetic.generate import generate_events

# 18 simulated users over 30 days give ~8,000 events (8,363 lines with the default dirt).
GENERATE = GenerateConfig(users=18, days=31, start_date="2018-10-01", seed=42)
TELCO_CSV = Path(__file__).resolve().parents[2] / "shared/data/telco"
TELCO_CSV /= "WA_Fn-UseC_-Telco-Customer-Churn.csv"
TABLE_ROWS = 10_000


def cpu_seconds(spark: SparkSession) -> float:
    """CPU time used so far by this Python process and the driver JVM (which runs the
    executors in local mode): unlike wall time, barely moved by other jobs on the machine."""
    used = os.times().user + os.times().system
    proc = getattr(spark.sparkContext._gateway, "proc", None)  # the JVM we launched
    stat = Path(f"/proc/{proc.pid}/stat") if proc is not None else None
    if stat is not None and stat.exists():
        utime, stime = stat.read_text().rsplit(")", 1)[1].split()[11:13]
        used += (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")
    return used


def measure(
    spark: SparkSession, name: str, step: Callable[[], Any], tables: list[str]
) -> dict[str, Any]:
    """Run `step` once; return its seconds, CPU seconds, Spark jobs and Delta commits."""
    sc = spark.sparkContext
    before = {t: storage.version(spark, t) for t in tables}
    group = f"{name}-{time.monotonic_ns()}"
    sc.setJobGroup(group, name)
    cpu, started = cpu_seconds(spark), time.monotonic()
    result = step()
    seconds, cpu = time.monotonic() - started, cpu_seconds(spark) - cpu
    sc.setLocalProperty("spark.jobGroup.id", None)  # the version reads below are not counted
    jobs = len(sc.statusTracker().getJobIdsForGroup(group))
    after = {t: storage.version(spark, t) for t in tables}
    commits = sum(
        (after[t] if after[t] is not None else -1) - (v if v is not None else -1)
        for t, v in before.items()
    )
    line = {"step": name, "seconds": round(seconds, 2), "cpu_s": round(cpu, 2)}
    line.update(jobs=jobs, commits=commits)
    if result is not None:
        line["result"] = {k: v for k, v in vars(result).items() if k != "snapshots"}
    print(json.dumps(line, default=str), flush=True)
    return line


def telco_csv(path: Path, rows: int) -> None:
    """The Telco sample repeated under new customerIDs up to `rows` rows."""
    with TELCO_CSV.open(newline="") as f:
        header, *body = list(csv.reader(f))
    out = [header]
    for i in range(rows):
        row, copy = body[i % len(body)], i // len(body)
        out.append([row[0] if copy == 0 else f"{row[0]}-{copy}", *row[1:]])
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(out)


def events_steps(spark: SparkSession, root: str) -> list[dict[str, Any]]:
    staged, raw = Path(root) / "staged", Path(root) / "raw"
    generate_events(spark, GENERATE, str(staged))
    days = sorted(staged.glob("*-events.json"))
    raw.mkdir()
    for day in days[:30]:
        shutil.move(str(day), raw / day.name)
    b, s, q = (f"{root}/{name}" for name in ("bronze", "silver", "quarantine"))
    steps = [
        measure(
            spark,
            "plain_copy",
            lambda: spark.read.text(str(raw)).write.format("delta").save(f"{root}/copy"),
            [f"{root}/copy"],
        ),
        measure(spark, "bronze", lambda: bronze.ingest(spark, str(raw), b, EVENTS), [b]),
        measure(spark, "silver", lambda: silver.update(spark, b, s, q, SOURCE), [s, q]),
        measure(spark, "bronze_rerun", lambda: bronze.ingest(spark, str(raw), b, EVENTS), [b]),
        measure(spark, "silver_rerun", lambda: silver.update(spark, b, s, q, SOURCE), [s, q]),
    ]
    shutil.move(str(days[30]), raw / days[30].name)
    steps += [
        measure(spark, "bronze_new_day", lambda: bronze.ingest(spark, str(raw), b, EVENTS), [b]),
        measure(spark, "silver_new_day", lambda: silver.update(spark, b, s, q, SOURCE), [s, q]),
    ]
    return steps


def table_steps(spark: SparkSession, root: str, telco_conf: str) -> list[dict[str, Any]]:
    source = Path(root) / "customers.csv"
    telco_csv(source, TABLE_ROWS)
    cfg = load_config(telco_conf, [f"storage.root={root}/telco"])
    paths = {name: cfg.table(name) for name in ("silver", "quarantine", "features", "labels")}

    def step() -> customer_table.TableResult:
        return customer_table.update(
            spark, cfg.source.table, str(source), cfg.train.snapshot_col, cfg.train.label_col, paths
        )

    tables = list(paths.values())
    return [measure(spark, "table", step, tables), measure(spark, "table_rerun", step, tables)]


# spark.jit as shipped (auto: the quick compiler alone for this small input), and both
# compilers for comparison.
JIT_VARIANTS = {"as_shipped": None, "both_compilers": "full"}


def cli_table_seconds(root: str, telco_conf: str, jit: str | None) -> float:
    """Wall seconds of `lakeml features` on the 10,000-row CSV in a new process."""
    source = Path(root) / "customers.csv"
    if not source.exists():
        telco_csv(source, TABLE_ROWS)
    out = tempfile.mkdtemp(dir=root)
    cmd = [str(Path(sys.executable).with_name("lakeml")), "features", "--conf", telco_conf]
    cmd += ["--set", f"storage.root={out}", "--set", f"source.path={source}"]
    if jit is not None:
        cmd += ["--set", f"spark.jit={jit}"]
    started = time.monotonic()
    run = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if run.returncode != 0:
        raise SystemExit(f"lakeml features failed: {run.stderr.strip().splitlines()[-1:]}")
    line = {"step": "cli_table", "jit": jit or "as shipped", "seconds": round(seconds, 2)}
    print(json.dumps(line), flush=True)
    return seconds


SOURCE = load_config(Path(__file__).resolve().parents[1] / "conf" / "local.yaml").source
EVENTS = SOURCE.events


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conf", default="conf/local.yaml")
    parser.add_argument("--telco-conf", default="conf/telco.yaml")
    parser.add_argument("--repeat", type=int, default=2, help="runs per step; the fastest counts")
    args = parser.parse_args(argv)
    started = time.monotonic()
    spark = get_spark(load_config(args.conf).spark)
    jvm_start = time.monotonic() - started
    runs: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as root:
        # Warm-up: the first Delta write and the first Delta read of a JVM are paid once per
        # process (class loading, JIT, the first log replay), whichever step comes first.
        started = time.monotonic()
        spark.range(10).write.format("delta").save(f"{root}/warmup")
        spark.read.format("delta").load(f"{root}/warmup").where("id > 4").count()
        warmup = time.monotonic() - started
        for i in range(args.repeat):
            (Path(root) / f"run{i}").mkdir()
            steps = events_steps(spark, f"{root}/run{i}")
            steps += table_steps(spark, f"{root}/run{i}", args.telco_conf)
            for step in steps:
                runs.setdefault(step["step"], []).append(step)
    spark.stop()
    cli: dict[str, list[float]] = {name: [] for name in JIT_VARIANTS}
    with tempfile.TemporaryDirectory() as root:
        for _ in range(args.repeat):
            for name, jit in JIT_VARIANTS.items():
                cli[name].append(cli_table_seconds(root, args.telco_conf, jit))
    fastest = {name: min(s["seconds"] for s in steps) for name, steps in runs.items()}
    least_cpu = {name: min(s["cpu_s"] for s in steps) for name, steps in runs.items()}
    plain = fastest["plain_copy"]
    summary = {
        "jvm_start_s": round(jvm_start, 1),
        "delta_warmup_s": round(warmup, 1),
        "raw_lines": runs["bronze"][0]["result"]["rows"],
        "table_rows": runs["table"][0]["result"]["input_rows"],
        "fastest_s": fastest,
        "least_cpu_s": least_cpu,
        "bronze_over_plain_copy": round(fastest["bronze"] / plain, 1),
        "silver_over_plain_copy": round(fastest["silver"] / plain, 1),
        "cli_table_s": {name: round(min(seconds), 1) for name, seconds in cli.items()},
        "jobs": {name: steps[0]["jobs"] for name, steps in runs.items()},
        "commits": {name: steps[0]["commits"] for name, steps in runs.items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
