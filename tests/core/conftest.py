from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from lakeml.core.session import cached_jars, delta_maven_coordinate, jar_cache_dir

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class DriverStart:
    run: subprocess.CompletedProcess[str]
    resolved_before: bool  # the Delta jars were resolved before this start
    class_log: Path  # the JVM's class-load log (-Xlog:class+load, to a file, not the output)


@pytest.fixture(scope="session")
def driver_start(tmp_path_factory: pytest.TempPathFactory) -> DriverStart:
    """One real driver started as a user starts it (`python -m lakeml.core.session` on
    conf/local.yaml), its class loading logged to a file: the start-up tests read what it
    printed and what it loaded, so the suite pays for one JVM start, not one per test."""
    folder = tmp_path_factory.mktemp("driver")
    log = folder / "classes.log"
    ui = '    spark.ui.enabled: "false"'
    local = (ROOT / "conf" / "local.yaml").read_text()
    assert ui in local
    conf = folder / "local.yaml"
    extra = f'\n    spark.driver.extraJavaOptions: "-Xlog:class+load=info:file={log}"'
    conf.write_text(local.replace(ui, ui + extra))
    resolved_before = cached_jars(delta_maven_coordinate(), jar_cache_dir()) is not None
    env = {k: v for k, v in os.environ.items() if k != "PYSPARK_GATEWAY_PORT"}
    run = subprocess.run(
        [sys.executable, "-m", "lakeml.core.session", "--conf", str(conf)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return DriverStart(run, resolved_before, log)
