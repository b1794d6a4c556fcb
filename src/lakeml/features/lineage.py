"""What each gold table was computed from, recorded in the table's own Delta commits.

Every gold write stores in its commit's `userMetadata` the silver table (id and version) it
read and the config values its rows depend on. The next run derives what to recompute from
that durable state alone: silver's commits after the recorded version, each of which records
the earliest event day it added. So a run that died after silver committed, or between the
features and the labels write, is healed by the next run, and rows computed with other
config values are never mixed with new ones. The functions here are pure; `gold.update`
reads the records and the history.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from lakeml.core.config import FeaturesConfig
from lakeml.ingest.silver import MARKER_KEY, NEW_SINCE

# userMetadata key of gold commits: {"silver_id", "silver_version", "config", "config_digest"}.
GOLD_KEY = "lakeml_gold"
# Table maintenance: operations that add or remove no row, so nothing to recompute.
MAINTENANCE = frozenset(
    {"OPTIMIZE", "VACUUM START", "VACUUM END", "SET TBLPROPERTIES", "UNSET TBLPROPERTIES"}
)


@dataclass(frozen=True)
class Source:
    """The silver table as this run of gold reads it."""

    table_id: str
    version: int


@dataclass(frozen=True)
class Since:
    """What silver gained since a gold table was written: `rebuild` when that cannot be
    known, else the earliest event day added (None: no event)."""

    rebuild: bool
    min_event_date: date | None = None


REBUILD = Since(rebuild=True)


def shaping_config(cfg: FeaturesConfig) -> dict[str, dict[str, Any]]:
    """Per gold table, the config values its rows depend on, by dotted key.

    Only what changes rows counts: windows are a set (order and repeats do not matter), and
    the series keys only when no explicit `dates` replace the series.
    """
    snaps = cfg.snapshots
    policy: dict[str, Any]
    if snaps.dates:
        policy = {"features.snapshots.dates": sorted(set(snaps.dates))}
    else:
        policy = {
            "features.snapshots.every_days": snaps.every_days,
            "features.snapshots.min_history_days": snaps.min_history_days,
            "features.snapshots.origin": snaps.origin,
        }
    population = {"features.active_within_days": cfg.active_within_days}
    aggregations = [a.model_dump(mode="json") for a in cfg.aggregations]
    target = cfg.target.model_dump(mode="json") if cfg.target else None
    return {
        "features": {
            "features.windows": sorted(set(cfg.windows)),
            "features.aggregations": digest({"aggregations": aggregations}),
            **population,
            **policy,
        },
        "labels": {
            "features.label_horizon_days": cfg.label_horizon_days,
            "features.target": digest({"target": target}),
            **population,
            **policy,
        },
    }


def digest(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]


def record(source: Source, values: dict[str, Any]) -> dict[str, Any]:
    """The commit metadata of a gold write that read `source` with these config values."""
    entry = {
        "silver_id": source.table_id,
        "silver_version": source.version,
        "config": values,
        "config_digest": digest(values),
    }
    return {GOLD_KEY: entry}


def latest_record(commits: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The record of a gold table's newest commit that changed its rows (`commits` newest
    first, see `storage.recent_commits`); None when that commit is no gold write (a RESTORE,
    a manual DELETE) or none is among them: what the table holds is then unknown."""
    for commit in commits:
        if GOLD_KEY in commit["metadata"]:
            return commit["metadata"][GOLD_KEY]
        if commit["operation"] not in MAINTENANCE:
            return None
    return None


def changed_keys(stored: dict[str, Any] | None, values: dict[str, Any]) -> list[str]:
    """The dotted keys whose values differ from the ones a table was built with, as
    `key (old -> new)`; [] when they match or the table has no record (it is rebuilt)."""
    if stored is None or stored.get("config_digest") == digest(values):
        return []
    old = stored.get("config") or {}
    keys = sorted(set(old) | set(values))
    return [
        f"{k} ({_show(old.get(k))} -> {_show(values.get(k))})"
        for k in keys
        if old.get(k) != values.get(k)
    ]


def _show(value: Any) -> str:
    return "unset" if value is None else json.dumps(value)


def since(
    stored: dict[str, Any] | None, source: Source, commits: list[dict[str, Any]] | None
) -> Since:
    """What silver gained between the version a gold table recorded and `source`.

    `commits` are silver's commits after some version at most the recorded one, oldest first
    (`storage.commits_after`; None: the history does not reach back so far). Rebuild when the
    table has no record, was computed from another silver table (deleted and created again),
    the history is gone, or a commit after the record was not written by lakeml's silver
    stage and is no mere maintenance (a manual DELETE, say): what changed is then unknown.
    """
    if stored is None or commits is None or stored.get("silver_id") != source.table_id:
        return REBUILD
    recorded = stored.get("silver_version")
    if not isinstance(recorded, int) or recorded > source.version:
        return REBUILD
    days = []
    for commit in commits:
        if not recorded < commit["version"] <= source.version:
            continue
        marker = commit["metadata"].get(MARKER_KEY)
        if marker is None and commit["operation"] in MAINTENANCE:
            continue
        if marker is None or NEW_SINCE not in marker:
            return REBUILD  # not silver's batch write, or one from before lakeml recorded days
        if marker[NEW_SINCE] is not None:
            days.append(date.fromisoformat(marker[NEW_SINCE]))
    return Since(rebuild=False, min_event_date=min(days, default=None))
