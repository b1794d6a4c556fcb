"""A crash at any point of `lakeml features`, then a rerun, gives exactly a clean run's tables.

Each case starts from tables built on the first days of a small event log, adds the late
last day, kills a real `lakeml features` (SIGKILL to Python and its JVM) at one point, and
reruns it. Every Delta table is then compared, row for row, with one clean run on all days.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fault_harness import assert_same_tables, killed_run

from lakeml.cli import main
from lakeml.core.config import Config, load_config
from lakeml.core.report import Report
from lakeml.pipeline import run_features
from lakeml.synthetic.generate import generate_events

CONF = Path(__file__).resolve().parents[2] / "conf" / "local.yaml"
DAYS = 29
TABLES = ["bronze/events", "silver/events", "silver/quarantine"]
GOLD = ["gold/user_features", "gold/churn_labels"]
SETTINGS = ["generate.users=10", f"generate.days={DAYS}", "generate.seed=11"]

# A real process per kill: CI runs these (`make fault-test`), `make test` the cheap rest.
pytestmark = [pytest.mark.faults, pytest.mark.crash]


def config(root: Path, *extra: str) -> Config:
    return load_config(CONF, [f"storage.root={root}", *SETTINGS, *extra])


def quiet() -> Report:
    return Report("test", stream=open("/dev/null", "w"))  # noqa: SIM115


def raw_days(folder: Path) -> list[Path]:
    return sorted(folder.glob("*-events.json"))


@pytest.fixture(scope="module")
def clean(spark, tmp_path_factory) -> Path:
    """One clean `lakeml features` on every day: the oracle."""
    root = tmp_path_factory.mktemp("clean")
    cfg = config(root)
    generate_events(spark, cfg.generate, cfg.source_path)
    run_features(spark, cfg, quiet())
    return root


@pytest.fixture(scope="module")
def before_late_day(spark, clean: Path, tmp_path_factory) -> tuple[Path, Path]:
    """(tables built on all days but the last, their raw folder). Bronze knows files by
    their path, so every case reads this same raw folder, one case at a time."""
    root, raw = tmp_path_factory.mktemp("before"), tmp_path_factory.mktemp("raw")
    for f in raw_days(Path(config(clean).source_path))[:-1]:
        shutil.copy(f, raw / f.name)
    run_features(spark, config(root, f"source.path={raw}"), quiet())
    return root, raw


# (what is armed, the marker the run is killed at): each point of a features run where
# a crash leaves a different state behind.
KILL_POINTS = {
    "before silver": ("", "[lakeml] bronze: done"),
    "silver written, gold not": ("", "[lakeml] silver: done"),
    "during the silver write": ("write silver/events", "failpoint: write silver/events"),
    "features written, labels not": ("gold.features_written", "failpoint: gold.features_written"),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_rerun_after_a_crash_equals_a_clean_run(
    spark, clean: Path, before_late_day: tuple[Path, Path], tmp_path: Path, capsys, point: str
) -> None:
    before, raw = before_late_day
    root = tmp_path / "root"
    shutil.copytree(before, root)
    late = raw_days(Path(config(clean).source_path))[-1]
    shutil.copy(late, raw / late.name)  # the late day arrives
    armed, marker = KILL_POINTS[point]
    sets = [f"storage.root={root}", f"source.path={raw}", *SETTINGS]
    args = ["features", "--conf", str(CONF), *[a for s in sets for a in ("--set", s)]]
    try:
        killed_run(args, marker, armed)
        capsys.readouterr()
        assert main(args) == 0
    finally:
        (raw / late.name).unlink()
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    this_run = summary["features"]["this_run"]
    assert summary["ok"] is True and this_run["reconciles"] is True
    kept = this_run["silver_inserted"] + this_run["quarantined"] + this_run["duplicates_removed"]
    # The summary's own check holds on the rerun, whichever run read the late day's lines.
    assert this_run["silver_input_rows"] == kept
    if point == "before silver":  # bronze holds the late day already; silver had not run
        assert this_run["bronze_rows"] == 0 and kept > 0
    assert_same_tables(root, clean, TABLES + GOLD)
