"""A `lakeml score` killed (SIGKILL, Python and its JVM) once its scores are committed but
before drift, or while the scores are being written, then rerun: the scores and drift tables
equal one clean run's, row for row (write times aside). Two `lakeml score` processes whose
scores commits race: both succeed and the tables equal one clean run's."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from deltalake import DeltaTable
from fault_harness import assert_same_tables, killed_run, raced_runs
from scoring_lake import Lake
from test_score_failures import score, score_argv

from lakeml.cli import main

pytestmark = [pytest.mark.faults, pytest.mark.crash]


@pytest.fixture(scope="module")
def clean(lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One clean `lakeml score` on the lake, with its own scores and drift tables: what every
    crashed, rerun or raced run below must equal (none of them writes under it)."""
    out = tmp_path_factory.mktemp("clean")
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()) as err:
        status = main(score_argv(lake, out))
    assert status == 0, err.getvalue()
    return out


@pytest.mark.parametrize("point", ["scores written, drift not", "during the scores write"])
def test_a_rerun_after_a_killed_score_equals_a_clean_run(
    spark, capsys, lake: Lake, clean: Path, tmp_path: Path, point: str
) -> None:
    crashed = tmp_path / "crashed"
    args = score_argv(lake, crashed)
    if point == "scores written, drift not":
        killed_run(args, "[lakeml] score: done")
    else:
        killed_run(args, "failpoint: write crashed/scores", failpoints="write crashed/scores")
    status, _, summary = score(capsys, lake, crashed)
    assert status == 0 and summary["stages_completed"] == ["score", "drift", "performance"]
    assert_same_tables(crashed, clean, ["scores", "drift"])


def test_two_scorers_racing_for_one_commit_both_succeed_with_a_clean_runs_tables(
    spark, lake: Lake, clean: Path, tmp_path: Path
) -> None:
    raced = tmp_path / "raced"
    args = score_argv(lake, raced)
    # Held at their first write to the new scores table and released together: both create
    # version 0, Delta takes one commit and rejects the other, which storage writes again.
    runs = raced_runs(args, "raced/scores", tmp_path / "go")
    for status, output in runs:
        assert status == 0, output
        assert "Traceback" not in output
    assert sum("failpoint: retry raced/scores" in out for _, out in runs) >= 1, (
        "no commit was rejected: the runs did not race"
    )
    assert_same_tables(raced, clean, ["scores", "drift"])
    assert len(DeltaTable(str(raced / "scores")).history()) == 2  # both writes, in turn
