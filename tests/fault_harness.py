"""Kill a real `lakeml` process at a marker, and compare Delta tables with a clean run's.

The kill is SIGKILL to the run's own process group (Python and its driver JVM: no clean-up
runs), sent when a line of its output shows the marker: a stage's progress line
(`[lakeml] silver: done in ...`) or a failpoint (`[lakeml] failpoint: <name>`, armed with
LAKEML_FAILPOINTS, see lakeml.core.failpoints). Tables are read with delta-rs, a reader
independent of the Spark code under test.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
from deltalake import DeltaTable

ROOT = Path(__file__).resolve().parents[1]
# Columns that say when or where a row was written, not what it holds.
VOLATILE = {"ingested_at", "quarantined_at", "scored_at", "computed_at"}


# The runs' driver JVMs use the quick compiler alone (`spark.jit`, a user's setting too): these
# tests are about what is left on disk, and short runs on small tables finish sooner this way.
QUICK = ["--set", "spark.jit=quick"]

# A killed driver leaves its scratch directory behind (the Delta jars it copied, about 86 MB):
# the runs keep theirs in one directory of this process's, removed when it exits.
SCRATCH = tempfile.mkdtemp(prefix="lakeml-killed-runs-")
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)


def start_lakeml(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """`lakeml *args` in a child process of its own (its own process group: the JVM dies
    with it), with `env` added to this environment, output and errors on one pipe."""
    child_env = {**os.environ, "SPARK_LOCAL_DIRS": SCRATCH, **env}
    child_env.pop("PYSPARK_GATEWAY_PORT", None)  # a driver of its own, not the suite's
    return subprocess.Popen(
        [sys.executable, "-m", "lakeml.cli", *args, *QUICK],
        cwd=ROOT,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def killed_run(args: list[str], marker: str, failpoints: str = "", timeout: int = 600) -> str:
    """Run `lakeml *args`, SIGKILL it at the first output line containing `marker`, and
    return its output up to there. Fails if the run ends before the marker shows."""
    proc = start_lakeml(args, {"LAKEML_FAILPOINTS": failpoints})
    seen = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if marker in line:
                os.killpg(proc.pid, signal.SIGKILL)
                break
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = "".join(seen)
    assert proc.returncode == -signal.SIGKILL, f"the run ended before {marker!r}:\n{output}"
    return output


def raced_runs(
    args: list[str], table: str, release: Path, runs: int = 2, timeout: int = 600
) -> list[tuple[int, str]]:
    """Start `runs` processes of `lakeml *args` at once, hold each just before its write to
    `table` (the failpoint `write <table>`), release them together once all are there, and
    return each one's (exit status, output). Their commits to `table` then race."""
    armed = {
        "LAKEML_FAILPOINTS": f"write {table},retry {table}",
        "LAKEML_FAILPOINTS_RELEASE": str(release),
    }
    procs = [start_lakeml(args, armed) for _ in range(runs)]
    outputs: list[list[str]] = [[] for _ in procs]
    held = [threading.Event() for _ in procs]

    def follow(i: int) -> None:
        stream = procs[i].stdout
        assert stream is not None
        for line in stream:
            outputs[i].append(line)
            if f"failpoint: write {table}" in line:
                held[i].set()
        held[i].set()  # ended early: the assertion below tells from its status

    readers = [threading.Thread(target=follow, args=(i,)) for i in range(runs)]
    for r in readers:
        r.start()
    try:
        deadline = time.monotonic() + timeout
        for h in held:
            h.wait(max(0.0, deadline - time.monotonic()))
        release.touch()
        for p in procs:
            p.wait(max(1.0, deadline - time.monotonic()))
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for r in readers:
            r.join()
    return [(p.returncode, "".join(out)) for p, out in zip(procs, outputs, strict=True)]


def table_rows(path: str | Path) -> pd.DataFrame:
    """A Delta table's rows in a canonical order, without write-time columns and with
    source files named by their file name (the roots of two runs differ)."""
    df = DeltaTable(str(path)).to_pandas()
    df = df.drop(columns=[c for c in df.columns if c in VOLATILE])
    if "source_file" in df.columns:
        df["source_file"] = df["source_file"].map(lambda p: os.path.basename(str(p)))
    df = df[sorted(df.columns)]
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def assert_same_tables(actual_root: Path, expected_root: Path, tables: list[str]) -> None:
    """Every table under `actual_root` holds exactly the rows of the one under
    `expected_root` (same columns, same rows, same multiplicities)."""
    for table in tables:
        actual, expected = table_rows(actual_root / table), table_rows(expected_root / table)
        assert len(actual) == len(expected), (
            f"{table}: {len(actual)} rows, {len(expected)} expected"
        )
        pd.testing.assert_frame_equal(actual, expected, check_dtype=False, obj=table)


def crash_on_write(monkeypatch, writer: str, path: str) -> None:
    """Make `lakeml.core.storage.<writer>` die, as the driver would, when it writes to
    `path` (other tables are written as usual); `monkeypatch.undo()` ends the crash."""
    from lakeml.core import storage

    real = getattr(storage, writer)

    def crashing(df, to: str, *args, **kwargs):
        if to == path:
            raise RuntimeError("the driver died")
        return real(df, to, *args, **kwargs)

    monkeypatch.setattr(storage, writer, crashing)
