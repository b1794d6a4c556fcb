"""A Delta table's log read without a JVM (delta-rs): version, row count and per-file
statistics, for summaries and for checks that must answer before Spark starts.

Every Delta writer records each data file's row count and column min/max in the log, so
these questions cost a read of the log, not a Spark job. Only what the log answers exactly
is answered: a table on a remote store (whose credentials live in the Spark config), one
with deletion vectors, or a file without statistics gives None, and the caller asks Spark.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from lakeml.core.paths import local_path


@dataclass(frozen=True)
class TableFacts:
    version: int
    rows: int
    files: list[dict[str, Any]]  # one per data file: num_records, min.<col>, partition.<col>...


def facts(path: str) -> TableFacts | None:
    """Version, rows and file statistics of the Delta table at `path`, or None when the log
    cannot answer exactly (see the module doc), including when there is no table."""
    folder = local_path(path)
    if folder is None or not os.path.isdir(os.path.join(folder, "_delta_log")):
        return None
    try:
        from deltalake import DeltaTable
        from deltalake.exceptions import DeltaError

        table = DeltaTable(folder)
        # Rows a deletion vector hides are still in the file's record count.
        if "deletionVectors" in (table.protocol().reader_features or []):
            return None
        files = _rows(table.get_add_actions(flatten=True))
    except (ImportError, DeltaError, OSError):
        return None
    if any(f.get("num_records") is None for f in files):
        return None
    return TableFacts(table.version(), sum(int(f["num_records"]) for f in files), files)


def _rows(actions: Any) -> list[dict[str, Any]]:
    import pyarrow as pa

    return pa.table(actions).to_pylist()
