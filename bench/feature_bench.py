"""Feature-job time over a plain Spark read+write of the same raw data, in one run.

`make bench` runs this: it generates the default sample under a temporary storage root,
times a plain `spark.read.text(raw).write.format("delta")` copy, then the feature job
(bronze -> silver -> gold) on the same files, and prints both and their ratio.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

from lakeml.core.config import load_config
from lakeml.core.report import Report
from lakeml.core.session import get_spark
from lakeml.pipeline import run_features, run_generate


def main(conf: str = "conf/local.yaml") -> None:
    with tempfile.TemporaryDirectory() as root:
        cfg = load_config(conf, [f"storage.root={root}"])
        spark = get_spark(cfg.spark)
        quiet = Report("bench", stream=open("/dev/null", "w"))  # noqa: SIM115
        run_generate(spark, cfg, quiet)
        # Warm the JVM once so neither timing pays the first-write cost.
        spark.range(10).write.format("delta").save(f"{root}/warmup")

        t0 = time.monotonic()
        spark.read.text(cfg.source_path).write.format("delta").save(f"{root}/plain_copy")
        plain = time.monotonic() - t0

        t0 = time.monotonic()
        summary = run_features(spark, cfg, quiet)
        job = time.monotonic() - t0

        t0 = time.monotonic()
        run_features(spark, cfg, quiet)
        rerun = time.monotonic() - t0
        spark.stop()
    result = {
        "raw_lines": summary["this_run"]["bronze_rows"],
        "plain_read_write_s": round(plain, 1),
        "feature_job_s": round(job, 1),
        "feature_job_over_plain_copy": round(job / plain, 1),
        "rerun_nothing_new_s": round(rerun, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
