"""The command line: user mistakes end in one clear line, results in a JSON last line.

The commands run in-process on the suite's SparkSession (the CLI leaves a session it did
not start running); one test runs the real `python -m lakeml.cli` process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lakeml.cli import main

ROOT = Path(__file__).resolve().parents[1]


def lakeml(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `lakeml <args>` in this process from the repository root: (status, stdout, stderr)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        status = main(list(args))
    out = capsys.readouterr()
    return status, out.out, out.err


def assert_one_line_error(status: int, stderr: str, *fragments: str) -> None:
    assert status == 2, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("lakeml ")]
    assert len(errors) == 1, stderr
    for fragment in fragments:
        assert fragment in errors[0]


def test_a_bad_config_value_fails_in_a_real_process_before_spark_starts(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "lakeml.cli", "pipeline", "--set", f"storage.root={tmp_path}"]
        + ["--set", "score.risk_bands=0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - started < 5, "a config error must not wait for Spark"
    assert_one_line_error(proc.returncode, proc.stderr, "score.risk_bands")
    assert list(tmp_path.iterdir()) == []


def test_config_typo_is_one_line_naming_the_key(capsys, tmp_path: Path) -> None:
    status, _, err = lakeml(
        capsys, "features", "--set", f"storage.root={tmp_path}", "--set", "featurs.windows=[7]"
    )
    assert_one_line_error(status, err, "unknown config key 'featurs'")


def test_missing_config_file_is_one_line(capsys) -> None:
    status, _, err = lakeml(capsys, "features", "--conf", "conf/nope.yaml")
    assert_one_line_error(status, err, "conf/nope.yaml", "not found")


@pytest.mark.e2e
def test_unreadable_input_path_is_one_line_and_writes_nothing(spark, capsys, tmp_path) -> None:
    root = tmp_path / "root"
    status, _, err = lakeml(
        capsys, "features", "--set", f"storage.root={root}", "--input", str(tmp_path / "nope")
    )
    assert_one_line_error(status, err, str(tmp_path / "nope"))
    assert not (root / "silver").exists()


@pytest.mark.e2e
def test_a_missing_customer_table_is_one_line_and_nothing_is_generated_in_its_place(
    spark, capsys, tmp_path: Path
) -> None:
    missing = tmp_path / "telco.csv"
    status, _, err = lakeml(
        capsys,
        "pipeline",
        "--conf",
        "conf/telco.yaml",
        "--set",
        f"storage.root={tmp_path / 'root'}",
        "--set",
        f"source.path={missing}",
    )
    assert_one_line_error(status, err, f"cannot read a csv table at '{missing}'")
    assert not missing.exists()
    assert not (tmp_path / "root" / "silver").exists()


@pytest.mark.e2e
def test_features_prints_progress_and_a_json_summary_last(spark, capsys, tmp_path: Path) -> None:
    root = tmp_path / "root"
    sets = ["--set", f"storage.root={root}", "--set", "generate.users=15"]
    status, gen_out, gen_err = lakeml(capsys, "generate", *sets, "--set", "generate.days=16")
    assert status == 0, gen_err
    status, out, err = lakeml(capsys, "features", *sets)
    assert status == 0, err
    lines = out.strip().splitlines()
    assert any(line.startswith("[lakeml] silver:") for line in lines)
    summary = json.loads(lines[-1])
    assert summary["command"] == "features"
    run = summary["features"]["this_run"]
    assert run["bronze_rows"] == json.loads(gen_out.strip().splitlines()[-1])["generated"]["lines"]
    assert run["reconciles"] is True
    assert summary["features"]["tables"]["silver"]["version"] is not None
    # The CLI did not start the session, so it left it running for the caller.
    assert spark.sparkContext._jsc is not None
    assert spark.range(1).count() == 1


def test_importing_the_cli_and_pipeline_loads_no_ml_library() -> None:
    code = (
        "import sys, lakeml.cli, lakeml.pipeline; "
        "print(sorted(m for m in ('pyspark.ml', 'mlflow', 'sklearn', 'pyspark.sql') "
        "if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def summary_of(stdout: str) -> dict:
    """The JSON summary: the last line of stdout."""
    return json.loads(stdout.strip().splitlines()[-1])


def test_a_failed_command_still_ends_with_a_json_summary(capsys) -> None:
    status, out, err = lakeml(capsys, "features", "--set", "featurs.windows=[7]")
    assert_one_line_error(status, err, "unknown config key 'featurs'")
    summary = summary_of(out)
    assert summary.pop("seconds") >= 0
    assert summary == {
        "command": "features",
        "ok": False,
        "error": err.strip().removeprefix("lakeml features: error: "),
        "exit_status": 2,
        "stages_completed": [],
        "failed_stage": None,
        "log": None,
    }


def test_an_unexpected_failure_is_one_line_naming_its_log_with_exit_1(
    spark, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakeml.synthetic import generate

    def on_fire(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(generate, "generate_events", on_fire)
    status, out, err = lakeml(capsys, "generate", "--set", f"storage.root={tmp_path}")
    summary = summary_of(out)
    log = summary["log"]
    assert status == 1
    assert err.strip() == (
        f"lakeml generate: internal error: RuntimeError: disk on fire (full traceback in {log})"
    )
    assert Path(log).parent == tmp_path / "logs"
    text = Path(log).read_text()
    assert "Traceback (most recent call last)" in text
    assert 'raise RuntimeError("disk on fire")' in text
    assert summary["ok"] is False
    assert summary["exit_status"] == 1
    assert summary["error"] == err.strip().removeprefix("lakeml generate: ")
    assert (summary["failed_stage"], summary["stages_completed"]) == ("generate", [])
    assert "[lakeml] generate: failed after" in out


def test_an_interrupted_command_exits_130_with_a_json_summary(
    spark, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakeml.synthetic import generate

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(generate, "generate_events", interrupt)
    status, out, err = lakeml(capsys, "generate", "--set", f"storage.root={tmp_path}")
    assert (status, err.strip()) == (130, "lakeml generate: interrupted")
    summary = summary_of(out)
    assert (summary["ok"], summary["error"], summary["exit_status"]) == (False, "interrupted", 130)


def test_a_success_summary_says_ok_and_the_stages_completed(spark, capsys, tmp_path) -> None:
    sets = ["--set", f"storage.root={tmp_path}", "--set", "generate.users=3"]
    status, out, err = lakeml(capsys, "generate", *sets, "--set", "generate.days=2")
    assert status == 0, err
    summary = summary_of(out)
    assert (summary["ok"], summary["stages_completed"]) == (True, ["generate"])
    # The keys a success always had are still there.
    assert {"command", "raw_path", "generated", "stage_seconds", "seconds"} <= summary.keys()
    assert "error" not in summary


def test_the_driver_jit_is_picked_by_the_size_of_a_features_pipeline_or_score_input(
    tmp_path: Path,
) -> None:
    """`input_bytes`: the raw input's size (`--input`, else source.path), or the scored
    table's (`--input`, else the features table), read from disk (`local_bytes`: every file
    under a folder); none for other commands or inputs."""
    from lakeml.cli import build_parser, input_bytes
    from lakeml.core.config import load_config
    from lakeml.core.paths import local_bytes

    raw = tmp_path / "raw"
    (raw / "2018-10-01").mkdir(parents=True)
    (raw / "a.json").write_bytes(b"x" * 300)
    (raw / "2018-10-01" / "b.json").write_bytes(b"y" * 45)
    cfg = load_config(ROOT / "conf" / "local.yaml", [f"source.path={raw}"])
    parser = build_parser()
    assert input_bytes(parser.parse_args(["features"]), cfg) == 345
    assert input_bytes(parser.parse_args(["pipeline"]), cfg) == 345
    single = raw / "a.json"
    assert input_bytes(parser.parse_args(["features", "--input", str(single)]), cfg) == 300
    absent = str(tmp_path / "absent")
    assert input_bytes(parser.parse_args(["features", "--input", absent]), cfg) is None
    assert input_bytes(parser.parse_args(["train"]), cfg) is None
    features = tmp_path / "lake" / "gold" / "user_features"
    (features / "_delta_log").mkdir(parents=True)
    (features / "part-0.parquet").write_bytes(b"p" * 1000)
    (features / "_delta_log" / "0.json").write_bytes(b"{}" * 10)
    lake = load_config(ROOT / "conf" / "local.yaml", [f"storage.root={tmp_path / 'lake'}"])
    assert input_bytes(parser.parse_args(["score"]), lake) == 1020
    assert input_bytes(parser.parse_args(["score", "--input", str(single)]), lake) == 300
    empty = load_config(ROOT / "conf" / "local.yaml", [f"storage.root={tmp_path / 'empty'}"])
    assert input_bytes(parser.parse_args(["score"]), empty) is None  # no features table yet
    assert local_bytes(f"file://{raw}") == 345
    assert local_bytes("s3a://bucket/raw/events") is None
