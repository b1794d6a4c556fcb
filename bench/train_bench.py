"""How long `lakeml train` takes on a feature table shaped like the default journey's.

    .venv/bin/python bench/train_bench.py conf/local.yaml [--users 450] [--snapshots 8]

Writes synthetic gold tables (weekly snapshots x users, ~70 feature columns, the last two
snapshots unlabelled as with a 14-day horizon) under a temporary storage.root, then runs
`train.run` twice (first training, then a retrain on unchanged data) with the config's
grids. Prints wall seconds per stage and CPU seconds (driver + JVM): on a shared machine
the CPU seconds say more than the wall clock.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "training"))

from synthetic_gold import snapshot_dates, synthetic_frames, to_spark  # noqa: E402

from lakeml.core.config import load_config  # noqa: E402
from lakeml.core.report import Report  # noqa: E402
from lakeml.core.session import get_spark  # noqa: E402
from lakeml.pipeline import run_train  # noqa: E402


def cpu_seconds(jvm_pid: int) -> float:
    """CPU time of this Python process and of the Spark driver JVM."""
    fields = Path(f"/proc/{jvm_pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return time.process_time() + (int(fields[11]) + int(fields[12])) / ticks


class TimedReport(Report):
    """Progress lines prefixed with wall and CPU seconds since the previous line."""

    def __init__(self, jvm_pid: int) -> None:
        super().__init__("train", stream=io.StringIO())
        self.jvm_pid = jvm_pid
        self.last = (time.monotonic(), cpu_seconds(jvm_pid))

    def progress(self, stage: str, message: str) -> None:
        now = (time.monotonic(), cpu_seconds(self.jvm_pid))
        wall, cpu = now[0] - self.last[0], now[1] - self.last[1]
        self.last = now
        print(f"  [{wall:6.1f}s wall {cpu:6.1f} cpu] {stage}: {message[:150]}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("conf", nargs="?", default="conf/local.yaml")
    parser.add_argument("--users", type=int, default=450)
    parser.add_argument("--snapshots", type=int, default=8)
    parser.add_argument("--noise-columns", type=int, default=62)
    parser.add_argument("--set", action="append", default=[], help="config override")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="lakeml-train-bench-")
    cfg = load_config(args.conf, [f"storage.root={root}", *args.set])
    spark = get_spark(cfg.spark)
    jvm_pid = int(spark._jvm.java.lang.ProcessHandle.current().pid())
    features, labels = synthetic_frames(args.users, args.snapshots, args.noise_columns, seed=7)
    labelled = snapshot_dates(args.snapshots)[:-2]
    labels = labels[labels["snapshot_date"].isin(labelled)]
    fdf, ldf = to_spark(spark, features, labels, args.noise_columns)
    fdf.write.format("delta").partitionBy("snapshot_date").save(cfg.table("features"))
    ldf.write.format("delta").partitionBy("snapshot_date").save(cfg.table("labels"))
    print(
        f"features: {args.snapshots} snapshots x {args.users} users, {len(fdf.columns) - 2} "
        f"feature columns; labels for {len(labelled)} snapshots; root {root}"
    )
    for attempt in ("first training", "retrain, unchanged data"):
        report = TimedReport(jvm_pid)
        wall, cpu = time.monotonic(), cpu_seconds(jvm_pid)
        out = run_train(spark, cfg, report)
        wall, cpu = time.monotonic() - wall, cpu_seconds(jvm_pid) - cpu
        stages = report.summary["stage_seconds"]
        print(f"{attempt}: {wall:.1f}s wall, {cpu:.1f} CPU s; stages {stages}")
        print(f"  logging: {out['logging_seconds']}; gate: {out['gate']['decision']}")
        for line in out["summary_lines"]:
            print(f"  {line}")
    spark.stop()


if __name__ == "__main__":
    main()
