"""The filesystem edge: folders of raw files on any Hadoop URI (local, HDFS, S3, ...).

Hadoop's FileSystem API is reached through the session's JVM here and nowhere else, so
the same code lists and writes local folders and object stores.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession


def _fs(spark: SparkSession, path: str) -> tuple[Any, Any]:
    """Hadoop's FileSystem for `path` and the path as a Hadoop Path."""
    hpath = spark._jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark._jsc.hadoopConfiguration()), hpath


def has_files(spark: SparkSession, path: str) -> bool:
    """True if `path` is a folder holding at least one visible file (not `_` or `.`)."""
    fs, hpath = _fs(spark, path)
    if not fs.exists(hpath):
        return False
    return any(not s.getPath().getName().startswith(("_", ".")) for s in fs.listStatus(hpath))


def write_files(spark: SparkSession, folder: str, files: dict[str, bytes]) -> None:
    """Create or overwrite each file (name -> bytes) under `folder`, creating the folder."""
    fs, root = _fs(spark, folder)
    fs.mkdirs(root)
    for name, data in files.items():
        stream = fs.create(spark._jvm.org.apache.hadoop.fs.Path(root, name), True)
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()
