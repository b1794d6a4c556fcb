"""A class-data sharing (AppCDS) archive for the driver JVM that lakeml launches.

A cold Spark driver spends seconds of its start, and of its first Delta read and write,
loading, parsing and verifying the same tens of thousands of classes on every run. The JVM
can dump those classes once, already parsed and verified, into an archive
(`-XX:ArchiveClassesAtExit`, JDK 13+) and map it on later starts (`-XX:SharedArchiveFile`).
`make install` builds the archive with a small representative run (see `build`); every
later start that lakeml launches itself maps it. The archive belongs to one Java binary
and one Spark install: it is keyed by both, and a JVM that finds it unusable ignores it
(`-Xshare:auto`, the default) and starts as it would without it. Beside each archive a
`.home` file names its Spark install; a build removes the archives of installs that are gone
(a deleted clone's venv), which would otherwise stay in the cache, about 200 MB each.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

# The JVM's own notes about classes it leaves out of an archive are not for users.
QUIET = ["-Xlog:cds=off", "-Xlog:cds+dynamic=off"]


def java_binary() -> str | None:
    """The java that Spark's launcher runs: $JAVA_HOME/bin/java, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    found = os.path.join(home, "bin", "java") if home else shutil.which("java")
    return os.path.realpath(found) if found and os.path.isfile(found) else None


def spark_home() -> str:
    """The directory of the pyspark install this process imports."""
    import pyspark

    return os.path.dirname(os.path.realpath(pyspark.__file__))


def archive_path(cache_dir: Path) -> Path | None:
    """Where the archive for this Java and this Spark install lives (None without java)."""
    java = java_binary()
    if java is None:
        return None
    import pyspark

    key = f"{java}\0{spark_home()}\0{pyspark.__version__}"
    digest = hashlib.sha256(key.encode()).hexdigest()
    return cache_dir / "cds" / f"spark-{pyspark.__version__}-{digest[:16]}.jsa"


def remove_orphans(folder: Path) -> None:
    """Remove the archives in `folder` whose `.home` names a Spark install that no longer
    exists. An archive without a `.home` file is left alone."""
    for home_file in folder.glob("*.home"):
        if not os.path.isdir(home_file.read_text().strip()):
            home_file.with_suffix(".jsa").unlink(missing_ok=True)
            home_file.unlink(missing_ok=True)


def java_options(cache_dir: Path) -> list[str]:
    """Options that map the archive, when one was built for this Java and Spark."""
    archive = archive_path(cache_dir)
    if archive is None or not archive.is_file():
        return []
    return [f"-XX:SharedArchiveFile={archive}", *QUIET]


def build(cache_dir: Path, run: Callable[[list[str]], object]) -> Path | None:
    """Build the archive: `run(java_options)` must start a driver JVM with the options, use
    it as lakeml does, and return once that JVM has exited (the JVM writes the archive as
    it exits). Written under a temporary name first, so a half-written file is never used.
    Returns the archive's path, or None when no archive came out (e.g. an older JVM)."""
    archive = archive_path(cache_dir)
    if archive is None:
        return None
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(f".{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    run([f"-XX:ArchiveClassesAtExit={partial}", *QUIET])
    if not partial.is_file() or partial.stat().st_size == 0:
        return None
    partial.replace(archive)
    archive.with_suffix(".home").write_text(spark_home())
    remove_orphans(archive.parent)
    return archive
