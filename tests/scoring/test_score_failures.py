"""`lakeml score` when something breaks: a one-line error, an exit status, a JSON summary
saying what was done, and a rerun that redoes it cleanly.

The commands run in-process on the suite's SparkSession against the conftest's lake; one
runs in a real process whose root has lost the right to bypass file permissions.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from scoring_lake import FEATURES, USERS, Lake

from lakeml.cli import main
from lakeml.core import storage
from lakeml.scoring import drift

ROOT = Path(__file__).resolve().parents[2]


def score_argv(lake: Lake, out: Path, *args: str) -> list[str]:
    """`lakeml score`'s arguments on the lake with its own scores and drift tables under `out`."""
    sets = [f"storage.root={lake.root}", f"tables.scores={out}/scores", f"tables.drift={out}/drift"]
    argv = ["score", "--conf", str(ROOT / "conf" / "local.yaml")]
    return [*argv, *[x for s in sets for x in ("--set", s)], *args]


def score(
    capsys: pytest.CaptureFixture[str], lake: Lake, out: Path, *args: str
) -> tuple[int, str, dict[str, Any]]:
    """`lakeml score` on the lake with its own scores and drift tables under `out`:
    (status, the one stderr line from lakeml on failure, the JSON summary)."""
    status = main(score_argv(lake, out, *args))
    captured = capsys.readouterr()
    line = one_line(captured.err) if status else ""
    assert "Traceback" not in captured.err
    return status, line, json.loads(captured.out.strip().splitlines()[-1])


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("lakeml ")]
    assert len(lines) == 1, stderr
    return lines[0]


def copy_features(lake: Lake, to: Path) -> Path:
    shutil.copytree(lake.cfg.table("features"), to)
    return to


def test_an_input_folder_that_is_not_a_table_is_one_line_with_exit_2(
    spark: SparkSession, capsys: pytest.CaptureFixture[str], lake: Lake, tmp_path: Path
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "users.csv").write_text("user_id,songs_7d\nu00,3\n")
    status, line, summary = score(capsys, lake, tmp_path, "--input", str(folder))
    assert status == 2
    assert line.startswith(f"lakeml score: error: no Delta or Parquet table at '{folder}' (")
    assert "users.csv is not a Parquet file" in line
    assert summary["ok"] is False
    assert summary["exit_status"] == 2
    assert summary["failed_stage"] == "score"
    assert summary["stages_completed"] == []
    assert summary["error"] == line.removeprefix("lakeml score: error: ")
    assert not storage.exists(spark, str(tmp_path / "scores"))


def test_a_deleted_data_file_names_the_features_table_and_the_rebuild(
    spark: SparkSession, capsys: pytest.CaptureFixture[str], lake: Lake, tmp_path: Path
) -> None:
    features = copy_features(lake, tmp_path / "features")
    lost = sorted(glob.glob(f"{features}/snapshot_date=*/*.parquet"))[-1]
    os.remove(lost)
    status, line, summary = score(capsys, lake, tmp_path, "--set", f"tables.features={features}")
    assert status == 2
    assert line.startswith(
        f"lakeml score: error: a data file of the features table at {features} is missing "
        f"({os.path.basename(lost)}); restore it from a backup, or run `lakeml features "
        "--full-refresh` to rebuild it from silver (full traceback in "
    )
    log = summary["log"]
    assert line.endswith(f"{log})")
    assert log.startswith(f"{lake.root}/logs/lakeml-score-")
    assert "FileNotFoundException" in Path(log).read_text()
    assert (summary["ok"], summary["failed_stage"]) == (False, "score")


def test_a_corrupt_delta_log_entry_names_the_table_and_the_file(
    spark: SparkSession, capsys: pytest.CaptureFixture[str], lake: Lake, tmp_path: Path
) -> None:
    features = copy_features(lake, tmp_path / "features")
    entry = features / "_delta_log" / "00000000000000000000.json"
    entry.write_text('{"commitInfo": {"timestamp": 15')  # cut off mid-write
    (features / "_delta_log" / ".00000000000000000000.json.crc").unlink()
    status, line, summary = score(capsys, lake, tmp_path, "--set", f"tables.features={features}")
    assert status == 2
    assert line.startswith(
        f"lakeml score: error: the Delta log of the features table at {features} is damaged "
        "(00000000000000000000.json is not valid JSON); restore that file from a backup, or "
        "run `lakeml features --full-refresh` to rebuild it from silver"
    )
    assert summary["exit_status"] == 2


@pytest.mark.e2e
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv"
)
def test_an_input_without_read_permission_is_one_line_in_a_real_process(
    lake: Lake, tmp_path: Path
) -> None:
    folder = tmp_path / "private"
    folder.mkdir()
    folder.chmod(0)
    # Root reads anything while it holds these capabilities; without them, mode 000 holds.
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    sets = [f"storage.root={lake.root}", f"tables.scores={tmp_path}/scores"]
    proc = subprocess.run(
        [*drop, sys.executable, "-m", "lakeml.cli", "score", "--input", str(folder)]
        + [x for s in sets for x in ("--set", s)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    folder.chmod(0o755)
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc.stderr)
    assert line.startswith(f"lakeml score: error: permission denied on {folder}; give the user")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (summary["ok"], summary["exit_status"]) == (False, 2)


def test_a_drift_crash_after_the_scores_are_written_says_so_and_a_rerun_redoes_both(
    spark: SparkSession,
    capsys: pytest.CaptureFixture[str],
    lake: Lake,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("drift exploded")

    with monkeypatch.context() as patch:
        patch.setattr(drift, "compute_drift", crash)
        status, line, failed = score(capsys, lake, tmp_path)
    scores_path = str(tmp_path / "scores")
    assert status == 1
    assert line.startswith("lakeml score: internal error: RuntimeError: drift exploded (full")
    assert "drift exploded" in Path(failed["log"]).read_text()
    assert failed["ok"] is False
    assert failed["stages_completed"] == ["score"]
    assert failed["failed_stage"] == "drift"
    assert failed["score"]["scores_table"] == {"path": scores_path, "version": 0}
    assert failed["score"]["rows_scored"] == USERS
    assert "drift" not in failed["score"]
    assert storage.read(spark, scores_path).count() == USERS
    assert not storage.exists(spark, str(tmp_path / "drift"))

    status, _, summary = score(capsys, lake, tmp_path)
    assert status == 0
    assert summary["ok"] is True
    assert summary["stages_completed"] == ["score", "drift", "performance"]
    assert summary["score"]["scores_table"] == {"path": scores_path, "version": 1}
    scores = storage.read(spark, scores_path)
    # Replaced, not appended: one row per user, all from the rerun.
    assert scores.count() == USERS
    assert scores.select("scored_at").distinct().count() == 1
    assert storage.read(spark, str(tmp_path / "drift")).count() == len(FEATURES)
    assert summary["score"]["drift"]["table"]["version"] == 0
    assert scores.agg(F.countDistinct("user_id")).first()[0] == USERS
