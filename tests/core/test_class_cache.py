"""The driver's class archive: built once under a temporary name, mapped on later starts."""

from __future__ import annotations

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
    # the partial file was renamed; beside the archive, the Spark install it belongs to
    assert sorted(archive.parent.iterdir()) == [archive.with_suffix(".home"), archive]
    assert archive.with_suffix(".home").read_text() == class_cache.spark_home()
    options = class_cache.java_options(tmp_path)
    assert options[0] == f"-XX:SharedArchiveFile={archive}"
    conf = build_conf(SparkConfig(master="local[1]"), cache_dir=tmp_path / "jars")
    assert f"-XX:SharedArchiveFile={archive}" in conf[JAVA_OPTIONS]


def test_a_build_removes_the_archives_of_spark_installs_that_are_gone(tmp_path) -> None:
    folder = tmp_path / "cds"
    folder.mkdir()
    for name, home in [("gone", tmp_path / "deleted-venv"), ("kept", tmp_path)]:
        (folder / f"{name}.jsa").write_bytes(b"archive")
        (folder / f"{name}.home").write_text(str(home))
    (folder / "older.jsa").write_bytes(b"archive")  # from before .home files: left alone

    def run(options: list[str]) -> None:
        Path(options[0].split("=", 1)[1]).write_bytes(b"archive")

    archive = class_cache.build(tmp_path, run)
    assert archive is not None
    names = sorted(p.name for p in folder.iterdir())
    expected = [
        "kept.home",
        "kept.jsa",
        "older.jsa",
        archive.name,
        archive.with_suffix(".home").name,
    ]
    assert names == sorted(expected)


def test_a_jvm_that_wrote_no_archive_leaves_none(tmp_path) -> None:
    assert class_cache.build(tmp_path, lambda options: None) is None
    assert class_cache.java_options(tmp_path) == []


def test_spark_classes_load_from_the_archive_make_install_built(driver_start) -> None:
    """A real driver started by lakeml maps the archive: the JVM's class-load log says where
    SparkContext came from."""
    archive = class_cache.archive_path(lakeml_cache_dir())
    assert archive is not None and archive.is_file(), "run `make install` to build it"
    assert driver_start.run.returncode == 0, driver_start.run.stderr
    log = driver_start.class_log.read_text().splitlines()
    lines = [ln for ln in log if " org.apache.spark.SparkContext " in ln]
    assert lines and "shared objects file" in lines[0], lines
