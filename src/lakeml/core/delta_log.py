"""A Delta table's log read without a JVM (delta-rs): version, id, commit history, row
count and per-file statistics, for summaries, for checks that must answer before Spark
starts, and for the bookkeeping each stage reads before it writes.

Every Delta writer records each commit's metadata and each data file's partition values,
row count and column min/max in the log, so these questions cost a read of the log, not a
Spark job. Only what the log answers exactly is answered: a table on a remote store (whose
credentials live in the Spark config), one with deletion vectors, or a file without
statistics gives None, and the caller asks Spark.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from typing import Any

from lakeml.core.paths import local_path


@dataclass(frozen=True)
class TableFacts:
    version: int
    rows: int
    files: list[dict[str, Any]]  # one per data file: num_records, min.<col>, partition.<col>...

    def partition_values(self, column: str) -> set[Any]:
        """The values of partition `column` that hold rows (files without rows left out)."""
        return {f.get(f"partition.{column}") for f in self.files if f["num_records"]}


def _table(path: str, version: int | None = None) -> Any | None:
    """The local Delta table at `path` (at `version`) read by delta-rs, or None."""
    folder = local_path(path)
    if folder is None or not os.path.isdir(os.path.join(folder, "_delta_log")):
        return None
    try:
        from deltalake import DeltaTable
        from deltalake.exceptions import DeltaError

        try:
            return DeltaTable(folder, version=version)
        except (DeltaError, OSError):
            return None
    except ImportError:
        return None


def facts(path: str, version: int | None = None) -> TableFacts | None:
    """Version, rows and file statistics of the Delta table at `path` (at `version`), or
    None when the log cannot answer exactly (see the module doc), including no table."""
    table = _table(path, version)
    if table is None:
        return None
    from deltalake.exceptions import DeltaError

    try:
        # Rows a deletion vector hides are still in the file's record count.
        if "deletionVectors" in (table.protocol().reader_features or []):
            return None
        files = _rows(table.get_add_actions(flatten=True))
    except (DeltaError, OSError):
        return None
    if any(f.get("num_records") is None for f in files):
        return None
    return TableFacts(table.version(), sum(int(f["num_records"]) for f in files), files)


def version(path: str) -> int | None:
    """The table's current version, or None when delta-rs cannot read it."""
    table = _table(path)
    return None if table is None else int(table.version())


def table_id(path: str) -> str | None:
    """The table's id (see `storage.table_id`), or None when delta-rs cannot read it."""
    table = _table(path)
    return None if table is None else str(table.metadata().id)


def history(path: str, limit: int | None = None) -> list[dict[str, Any]] | None:
    """The newest `limit` commits (all: None) as {"version", "operation", "userMetadata"},
    in any order, or None when delta-rs cannot read them."""
    table = _table(path)
    if table is None:
        return None
    from deltalake.exceptions import DeltaError

    try:
        commits = table.history(limit)
    except (DeltaError, OSError):
        return None
    keys = ("version", "operation", "userMetadata")
    return [{k: c.get(k) for k in keys} for c in commits if c.get("version") is not None]


def date_range(path: str, column: str, version: int | None = None) -> tuple[date, date] | None:
    """First and last value of a date partition column over the files holding rows, or None
    when the log cannot answer (or there are none)."""
    known = facts(path, version)
    if known is None:
        return None
    days = known.partition_values(column)
    if not days or not all(isinstance(d, date) for d in days):
        return None
    return min(days), max(days)


def _rows(actions: Any) -> list[dict[str, Any]]:
    import pyarrow as pa

    return pa.table(actions).to_pylist()
