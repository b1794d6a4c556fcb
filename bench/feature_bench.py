"""The declarative feature job over plain Spark copies of the same raw files, in one run.

`make bench` runs this: it generates the sample (`--scale N`: N times the config's users)
under a temporary storage root and times, on the same files:
- a text copy: `spark.read.text(raw).write.format("delta")`;
- a typed copy: `spark.read.schema(S).json(raw).write.format("delta")`, S the log's fields
  as `source.events` types them;
- the feature job (bronze -> silver -> gold), each stage's seconds;
- the hand-written Sparkify features and labels the preset replaced (kept as the test
  oracle in tests/features/sparkify_reference.py), on the same silver, written to Delta,
  and compared with the preset's tables row for row (exceptAll both ways);
- a rerun with nothing new;
- the floor under silver (`bench/silver_floor.py`, in a fresh driver on the same bronze):
  silver's judging and partitioned write of the valid rows alone, over a typed copy there.
It prints one JSON line: seconds, and the job and silver as multiples of the typed copy.

    .venv/bin/python bench/feature_bench.py [conf/local.yaml] [--scale 10]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "features"))

from lakeml.core import storage  # noqa: E402
from lakeml.core.config import load_config  # noqa: E402
from lakeml.core.report import Report  # noqa: E402
from lakeml.core.session import get_spark  # noqa: E402
from lakeml.pipeline import run_features, run_generate  # noqa: E402


def timed(action) -> float:  # noqa: ANN001
    t0 = time.monotonic()
    action()
    return time.monotonic() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("conf", nargs="?", default="conf/local.yaml")
    parser.add_argument("--scale", type=int, default=1)
    args = parser.parse_args()
    import sparkify_reference as reference
    from silver_floor import copy_schema

    with tempfile.TemporaryDirectory() as root:
        base = load_config(args.conf)
        users = base.generate.users * args.scale
        cfg = load_config(args.conf, [f"storage.root={root}", f"generate.users={users}"])
        spark = get_spark(cfg.spark)
        quiet = Report("bench", stream=io.StringIO())
        run_generate(spark, cfg, quiet)
        raw = cfg.source_path
        # Warm the JVM once so no timing pays the first-write cost.
        spark.range(10).write.format("delta").save(f"{root}/warmup")
        text_copy = timed(lambda: spark.read.text(raw).write.format("delta").save(f"{root}/t"))
        schema = copy_schema(cfg.source.events)
        typed_copy = timed(
            lambda: spark.read.schema(schema).json(raw).write.format("delta").save(f"{root}/j")
        )
        report = Report("bench", stream=io.StringIO())
        job = timed(lambda: run_features(spark, cfg, report))
        stages = report.summary["stage_seconds"]

        silver = storage.read(spark, cfg.table("silver"))
        features = storage.read(spark, cfg.table("features"))
        labels = storage.read(spark, cfg.table("labels"))
        dates = sorted(r[0] for r in features.select("snapshot_date").distinct().collect())
        labelled = sorted(r[0] for r in labels.select("snapshot_date").distinct().collect())
        last = max(r[0] for r in silver.select("event_date").distinct().collect())

        def hand_written() -> None:
            w = cfg.features.windows
            h = cfg.features.label_horizon_days
            reference.build_features(silver, dates, w).write.format("delta").save(f"{root}/hf")
            reference.build_labels(silver, labelled, h, last).write.format("delta").save(
                f"{root}/hl"
            )

        hand = timed(hand_written)
        # The preset's tables against the hand-written ones, row for row both ways.
        same = {}
        for name, ours, theirs in (("features", features, "hf"), ("labels", labels, "hl")):
            other = storage.read(spark, f"{root}/{theirs}")
            same[name] = {
                "rows": ours.count(),
                "hand_written_rows": other.count(),
                "only_declarative": ours.exceptAll(other).count(),
                "only_hand_written": other.exceptAll(ours.select(*other.columns)).count(),
                "same_columns": ours.columns == other.columns,
            }
        rerun = timed(lambda: run_features(spark, cfg, Report("bench", stream=io.StringIO())))
        lines = storage.count(spark, cfg.table("bronze"))
        spark.stop()
        # The floor under silver, in a fresh driver on this bronze (see silver_floor.py).
        floor_run = subprocess.run(
            [sys.executable, str(REPO / "bench" / "silver_floor.py"), args.conf, "--root", root],
            check=True,
            stdout=subprocess.PIPE,  # its log and any error still reach stderr
            text=True,
        )
        floor = json.loads(floor_run.stdout.strip().splitlines()[-1])
    result = {
        "scale": args.scale,
        "users": users,
        "raw_lines": lines,
        "text_copy_s": round(text_copy, 1),
        "typed_json_copy_s": round(typed_copy, 1),
        "feature_job_s": round(job, 1),
        "stage_s": {k: round(v, 1) for k, v in stages.items()},
        "gold_hand_written_s": round(hand, 1),
        "preset_equals_hand_written": same,
        "job_over_typed_copy": round(job / typed_copy, 2),
        "silver_over_typed_copy": round(stages["silver"] / typed_copy, 2),
        "rerun_nothing_new_s": round(rerun, 1),
        "silver_floor": floor,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
