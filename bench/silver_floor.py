"""A floor under silver's time: the part of its work that silver's contract (every line judged
by the declared rules, an event id, a Delta table partitioned by day) leaves no design free
to skip, in one query, against the typed copy in the same fresh driver.

`bench/feature_bench.py` runs this in a new process on the storage root whose bronze it has
built, so the floor, like the job's silver, is a first run after a typed copy. The floor
query judges every bronze line exactly as silver does (`rules.classify`: parse, rules, event
id) and appends the valid rows to a Delta table partitioned by `event_date`, without column
statistics, as silver does. It leaves out the rest of silver's work: the quarantine, the
counts by rule, the de-duplication within the batch and against the table. So a silver that
keeps its contract cannot take less than this on the same machine, and
`floor_over_typed_copy` is the least its multiple of the typed copy can be.

    .venv/bin/python bench/silver_floor.py conf/local.yaml --root ROOT
"""

from __future__ import annotations

import argparse
import json
import time

from pyspark.sql import Observation
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeml.core import storage
from lakeml.core.config import load_config
from lakeml.core.event_spec import EventSourceSpec
from lakeml.core.session import get_spark
from lakeml.ingest.rules import SPARK_TYPES, classify, silver_columns


def copy_schema(spec: EventSourceSpec) -> T.StructType:
    """The typed copy's schema S: each field of the log as `source.events` types it."""
    return T.StructType([T.StructField(f.name, SPARK_TYPES[f.type]) for f in spec.fields])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("conf", nargs="?", default="conf/local.yaml")
    parser.add_argument("--root", required=True, help="a storage root that holds bronze")
    args = parser.parse_args()
    cfg = load_config(args.conf, [f"storage.root={args.root}"])
    spark = get_spark(cfg.spark)
    out = f"{args.root}/floor"
    spark.range(10).write.format("delta").save(f"{out}/warmup")
    spec = cfg.source.events
    lines = spark.read.schema(copy_schema(spec)).json(cfg.source_path)
    t0 = time.monotonic()
    lines.write.format("delta").save(f"{out}/typed")
    typed_copy = time.monotonic() - t0

    judged = classify(storage.read(spark, cfg.table("bronze")), cfg.source)
    # The observation keeps the filter above the judging, as silver's cache does (see
    # `classify`); it counts every judged line, which silver needs too.
    judged_lines = Observation()
    counted = judged.observe(judged_lines, F.count(F.lit(1)).alias("rows"))
    valid = counted.where(F.col("rule").isNull()).select(*silver_columns(spec))
    t0 = time.monotonic()
    storage.append(valid, f"{out}/silver", ["event_date"], stats_columns=storage.NO_STATS)
    floor = time.monotonic() - t0
    written = storage.count(spark, f"{out}/silver")
    spark.stop()
    result = {
        "typed_json_copy_s": round(typed_copy, 1),
        "floor_s": round(floor, 1),
        "floor_over_typed_copy": round(floor / typed_copy, 2),
        "judged_lines": judged_lines.get["rows"],
        "valid_rows_written": written,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
