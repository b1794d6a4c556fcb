"""The command line: user mistakes end in one clear line, results in a JSON last line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def lakeml(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lakeml.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("lakeml ")]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0]


def test_config_typo_is_one_line_naming_the_key(tmp_path: Path) -> None:
    proc = lakeml("features", "--set", f"storage.root={tmp_path}", "--set", "featurs.windows=[7]")
    assert_one_line_error(proc, "unknown config key 'featurs'")


def test_missing_config_file_is_one_line() -> None:
    proc = lakeml("features", "--conf", "conf/nope.yaml")
    assert_one_line_error(proc, "conf/nope.yaml", "not found")


@pytest.mark.e2e
def test_unreadable_input_path_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    proc = lakeml(
        "features", "--set", f"storage.root={tmp_path / 'root'}", "--input", str(tmp_path / "nope")
    )
    assert_one_line_error(proc, str(tmp_path / "nope"))
    assert not (tmp_path / "root" / "silver").exists()


@pytest.mark.e2e
def test_a_missing_customer_table_is_one_line_and_nothing_is_generated_in_its_place(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "telco.csv"
    proc = lakeml(
        "pipeline",
        "--conf",
        "conf/telco.yaml",
        "--set",
        f"storage.root={tmp_path / 'root'}",
        "--set",
        f"source.path={missing}",
    )
    assert_one_line_error(proc, f"cannot read a csv table at '{missing}'")
    assert not missing.exists()
    assert not (tmp_path / "root" / "silver").exists()


@pytest.mark.e2e
def test_features_prints_progress_and_a_json_summary_last(tmp_path: Path) -> None:
    root = tmp_path / "root"
    sets = ["--set", f"storage.root={root}", "--set", "generate.users=15"]
    gen = lakeml("generate", *sets, "--set", "generate.days=16")
    assert gen.returncode == 0, gen.stderr
    proc = lakeml("features", *sets)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert any(line.startswith("[lakeml] silver:") for line in lines)
    summary = json.loads(lines[-1])
    assert summary["command"] == "features"
    run = summary["features"]["this_run"]
    assert (
        run["bronze_rows"] == json.loads(gen.stdout.strip().splitlines()[-1])["generated"]["lines"]
    )
    assert run["reconciles"] is True
    assert summary["features"]["tables"]["silver"]["version"] is not None
