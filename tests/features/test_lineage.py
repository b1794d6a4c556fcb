"""What a gold table recorded about its inputs, and what it follows from (no Spark)."""

from __future__ import annotations

from datetime import date
from typing import Any

from lakeml.core.config import FeaturesConfig, SnapshotConfig
from lakeml.features.lineage import (
    REBUILD,
    Since,
    Source,
    changed_keys,
    latest_record,
    record,
    shaping_config,
    since,
)

SILVER_ID = "0f3c-silver"


def silver_commit(version: int, day: str | None) -> dict[str, Any]:
    """A commit of silver's batch write recording the earliest event day it adds."""
    marker = {"bronze_until_us": 1, "bronze_version": version, "min_event_date": day}
    return {"version": version, "operation": "WRITE", "metadata": {"lakeml_silver": marker}}


def written_at(version: int, cfg: FeaturesConfig | None = None) -> dict[str, Any]:
    """The record a gold table keeps after computing from silver at `version`."""
    values = shaping_config(cfg or FeaturesConfig())["features"]
    return record(Source(SILVER_ID, version), values)["lakeml_gold"]


def test_the_earliest_day_of_every_silver_commit_after_the_record_counts() -> None:
    commits = [
        silver_commit(4, "2018-10-01"),  # already in the table (recorded version 4)
        silver_commit(5, "2018-10-20"),
        silver_commit(6, None),  # a batch of duplicates only: no event added
        {"version": 7, "operation": "OPTIMIZE", "metadata": {}},  # maintenance
        silver_commit(8, "2018-10-03"),  # a late day
        silver_commit(9, "2018-09-01"),  # after the version this run reads: not yet
    ]
    source = Source(SILVER_ID, 8)

    assert since(written_at(4), source, commits) == Since(False, date(2018, 10, 3))
    assert since(written_at(5), source, commits) == Since(False, date(2018, 10, 3))
    assert since(written_at(8), source, commits) == Since(False, None)


def test_what_silver_gained_is_unknown_so_the_table_is_rebuilt() -> None:
    commits = [silver_commit(3, "2018-10-02")]
    source = Source(SILVER_ID, 3)
    # No record: written by an older lakeml, or never written.
    assert since(None, source, commits) == REBUILD
    # Silver was deleted and created again: its versions count from 0 again.
    assert since(written_at(2), Source("another-id", 3), commits) == REBUILD
    assert since(written_at(7), source, commits) == REBUILD
    # Delta cleaned up the log entries after the recorded version.
    assert since(written_at(2), source, None) == REBUILD
    # A commit lakeml's silver stage did not write, e.g. a manual DELETE of bad rows.
    manual = {"version": 3, "operation": "DELETE", "metadata": {}}
    assert since(written_at(2), source, [manual]) == REBUILD
    # A batch commit from before silver recorded its earliest day.
    old = {"version": 3, "operation": "WRITE", "metadata": {"lakeml_silver": {"bronze_version": 1}}}
    assert since(written_at(2), source, [old]) == REBUILD


def test_changed_keys_name_what_each_table_depends_on() -> None:
    built = shaping_config(FeaturesConfig())
    stored = {name: record(Source(SILVER_ID, 0), v)["lakeml_gold"] for name, v in built.items()}

    # The same values, windows in another order: nothing changed.
    same = shaping_config(FeaturesConfig(windows=[28, 7, 14, 7]))
    assert [changed_keys(stored[n], same[n]) for n in ("features", "labels")] == [[], []]

    horizon = shaping_config(FeaturesConfig(label_horizon_days=200))
    assert changed_keys(stored["features"], horizon["features"]) == []
    assert changed_keys(stored["labels"], horizon["labels"]) == [
        "features.label_horizon_days (14 -> 200)"
    ]

    windows = shaping_config(FeaturesConfig(windows=[7, 30]))
    assert changed_keys(stored["features"], windows["features"]) == [
        "features.windows ([7, 14, 28] -> [7, 30])"
    ]
    assert changed_keys(stored["labels"], windows["labels"]) == []

    # The snapshot policy shapes both; explicit dates replace the series keys.
    listed = shaping_config(FeaturesConfig(snapshots=SnapshotConfig(dates=["2018-10-15"])))
    expected = [
        'features.snapshots.dates (unset -> ["2018-10-15"])',
        "features.snapshots.every_days (7 -> unset)",
        "features.snapshots.min_history_days (7 -> unset)",
        'features.snapshots.origin ("1970-01-05" -> unset)',
    ]
    assert changed_keys(stored["features"], listed["features"]) == expected
    assert changed_keys(stored["labels"], listed["labels"]) == expected
    # A table without a record is rebuilt, not refused.
    assert changed_keys(None, horizon["labels"]) == []
    # The cap on the number of snapshots changes no row.
    capped = shaping_config(FeaturesConfig(snapshots=SnapshotConfig(max_snapshots=10)))
    assert changed_keys(stored["features"], capped["features"]) == []


def test_a_gold_table_is_known_only_if_its_newest_row_change_is_a_gold_write() -> None:
    ours = {"version": 3, "operation": "WRITE", "metadata": {"lakeml_gold": written_at(7)}}
    optimize = {"version": 4, "operation": "OPTIMIZE", "metadata": {}}
    restore = {"version": 5, "operation": "RESTORE", "metadata": {}}
    # newest first, as storage.recent_commits gives them
    assert latest_record([optimize, ours]) == written_at(7)
    # Rolled back to an older version: the rows are no longer those the record describes.
    assert latest_record([restore, optimize, ours]) is None
    assert latest_record([optimize]) is None
    assert latest_record([]) is None
