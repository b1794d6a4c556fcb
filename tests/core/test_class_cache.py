"""The driver's class archive: built once under a temporary name, mapped on later starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lakeml.core import class_cache
from lakeml.core.config import SparkConfig
from lakeml.core.session import build_conf, lakeml_cache_dir

ROOT = Path(__file__).resolve().parents[2]
JAVA_OPTIONS = "spark.driver.defaultJavaOptions"


def test_no_archive_no_options_then_the_built_one_is_mapped(tmp_path) -> None:
    assert class_cache.java_options(tmp_path) == []
    seen: list[list[str]] = []

    def run(options: list[str]) -> None:  # stands in for the JVM writing its archive on exit
        seen.append(options)
        Path(options[0].split("=", 1)[1]).write_bytes(b"archive")

    archive = class_cache.build(tmp_path, run)
    assert seen[0][0].startswith("-XX:ArchiveClassesAtExit=") and seen[0][0].endswith(".partial")
    assert archive == class_cache.archive_path(tmp_path) and archive.read_bytes() == b"archive"
    assert list(archive.parent.iterdir()) == [archive]  # the partial file was renamed
    options = class_cache.java_options(tmp_path)
    assert options[0] == f"-XX:SharedArchiveFile={archive}"
    conf = build_conf(SparkConfig(master="local[1]"), cache_dir=tmp_path / "jars")
    assert f"-XX:SharedArchiveFile={archive}" in conf[JAVA_OPTIONS]


def test_a_jvm_that_wrote_no_archive_leaves_none(tmp_path) -> None:
    assert class_cache.build(tmp_path, lambda options: None) is None
    assert class_cache.java_options(tmp_path) == []


def test_spark_classes_load_from_the_archive_make_install_built(tmp_path) -> None:
    """A real driver started by lakeml maps the archive: the JVM's class-load log says where
    SparkContext came from."""
    archive = class_cache.archive_path(lakeml_cache_dir())
    assert archive is not None and archive.is_file(), "run `make install` to build it"
    log = tmp_path / "classes.log"
    conf = tmp_path / "conf.yaml"
    ui = '    spark.ui.enabled: "false"'
    local = (ROOT / "conf" / "local.yaml").read_text()
    assert ui in local
    extra = f'\n    spark.driver.extraJavaOptions: "-Xlog:class+load=info:file={log}"'
    conf.write_text(local.replace(ui, ui + extra))
    run = subprocess.run(
        [sys.executable, "-m", "lakeml.core.session", "--conf", str(conf)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    lines = [ln for ln in log.read_text().splitlines() if " org.apache.spark.SparkContext " in ln]
    assert lines and "shared objects file" in lines[0], lines
