"""The latest score of every entity, read from the Delta scores table with delta-rs.

The table is read once per Delta version (no JVM): the rows of its latest snapshot for the
served registered model, the latest `scored_at` per entity winning (a version scored later
supersedes an earlier one of the same snapshot). Lookups are one dict probe into the rows'
Arrow columns, turned into Python values for that one row only (the reasons of a million
rows as Python objects would take about a gigabyte); memory per million entities is
measured by `bench/serve_bench.py` and given in the README.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

COLUMNS = (
    "snapshot_date", "churn_probability", "predicted_churn", "risk_decile", "reasons",
    "model_name", "model_version", "scored_at",
)  # fmt: skip


@dataclass(frozen=True)
class ScoresIndex:
    """Entity id -> row position, plus the rows' columns."""

    path: str
    version: int
    entity_col: str
    snapshot: dt.date | None
    scored_at: dt.datetime | None  # when the latest of these scores was written
    positions: dict[str, int]
    columns: dict[str, pa.Array]

    def __len__(self) -> int:
        return len(self.positions)

    def get(self, entity_id: str) -> dict[str, Any] | None:
        i = self.positions.get(entity_id)
        if i is None:
            return None
        row = {name: values[i].as_py() for name, values in self.columns.items()}
        row["snapshot_date"] = row["snapshot_date"].isoformat()
        row["scored_at"] = row["scored_at"].isoformat()
        return {self.entity_col: entity_id, **row}

    def age_days(self, now: dt.datetime) -> float | None:
        """Days since these scores were written (not the snapshot's age: a snapshot of old
        data scored today is fresh)."""
        if self.scored_at is None:
            return None
        written = self.scored_at
        if written.tzinfo is None:
            written = written.replace(tzinfo=dt.UTC)
        return (now - written).total_seconds() / 86400


def table_version(path: str) -> int:
    from deltalake import DeltaTable

    return DeltaTable(path).version()


def load(path: str, entity_col: str, model_name: str) -> ScoresIndex:
    """Index the latest snapshot's scores of `model_name` in the table at `path`."""
    from deltalake import DeltaTable

    table = DeltaTable(path)
    version = table.version()
    data = table.to_pyarrow_table(
        columns=[entity_col, *COLUMNS],
        filters=[("model_name", "=", model_name)],
    )
    if data.num_rows == 0:
        return ScoresIndex(path, version, entity_col, None, None, {}, {})
    snapshot = pc.max(data["snapshot_date"]).as_py()
    data = data.filter(pc.equal(data["snapshot_date"], snapshot))
    # Oldest first, so the latest scored_at of an entity is written last and wins.
    order = np.argsort(data["scored_at"].to_numpy(zero_copy_only=False), kind="stable")
    data = data.take(order)
    ids = data[entity_col].to_pylist()
    positions = {str(e): i for i, e in enumerate(ids)}
    columns = {c: data[c].combine_chunks() for c in COLUMNS}
    written = pc.max(data["scored_at"]).as_py()
    return ScoresIndex(path, version, entity_col, snapshot, written, positions, columns)
