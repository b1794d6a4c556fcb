"""A `lakeml score` killed (SIGKILL, Python and its JVM) once its scores are committed but
before drift, or while the scores are being written, then rerun: the scores and drift tables
equal one clean run's, row for row (write times aside)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fault_harness import ROOT, assert_same_tables, killed_run
from scoring_lake import Lake
from test_score_failures import score

pytestmark = [pytest.mark.faults, pytest.mark.crash]


@pytest.mark.parametrize("point", ["scores written, drift not", "during the scores write"])
def test_a_rerun_after_a_killed_score_equals_a_clean_run(
    spark, capsys, lake: Lake, tmp_path: Path, point: str
) -> None:
    clean, crashed = tmp_path / "clean", tmp_path / "crashed"
    status, _, _ = score(capsys, lake, clean)
    assert status == 0
    sets = [f"storage.root={lake.root}"] + [
        f"tables.{t}={crashed}/{t}" for t in ("scores", "drift")
    ]
    args = ["score", "--conf", str(ROOT / "conf" / "local.yaml")]
    args += [a for s in sets for a in ("--set", s)]
    if point == "scores written, drift not":
        killed_run(args, "[lakeml] score: done")
    else:
        killed_run(args, "failpoint: write crashed/scores", failpoints="write crashed/scores")
    status, _, summary = score(capsys, lake, crashed)
    assert status == 0 and summary["stages_completed"] == ["score", "drift"]
    assert_same_tables(crashed, clean, ["scores", "drift"])
