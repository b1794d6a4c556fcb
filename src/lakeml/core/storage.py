"""Delta table I/O at the edges of each stage: read, version, write, commit metadata."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from lakeml.core import failpoints
from lakeml.core.errors import LakemlError
from lakeml.core.failures import is_commit_conflict

# Commits searched for a stage's metadata before falling back to the whole history.
RECENT_COMMITS = 20
# A write whose commit Delta rejects for a concurrent writer's (two `lakeml score` runs at
# once) is run again whole, up to this many attempts in all, after a random pause of up to
# BACKOFF_SECONDS * 2**(attempt - 1): at most 0.5 + 1 + 2 + 4 = 7.5 s of waiting.
WRITE_ATTEMPTS = 5
BACKOFF_SECONDS = 0.5
_pause = time.sleep  # tests replace it to count the retries


def exists(spark: SparkSession, path: str) -> bool:
    return DeltaTable.isDeltaTable(spark, path)


def read(spark: SparkSession, path: str, version: int | None = None) -> DataFrame:
    """Read a Delta table (optionally at a version), with a clear error if it is not there."""
    if not exists(spark, path):
        raise LakemlError(f"no Delta table at {path!r}; run the step that writes it first")
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(path)


def version(spark: SparkSession, path: str) -> int | None:
    """The table's current Delta version, or None if there is no table."""
    if not exists(spark, path):
        return None
    from lakeml.core import delta_log

    known = delta_log.version(path)
    if known is not None:
        return known
    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    return int(row["version"]) if row else None


def _history(spark: SparkSession, path: str, limit: int | None) -> list[dict[str, Any]]:
    """The newest `limit` commits (all: None) as {"version", "operation", "userMetadata"}:
    from the log when it is local (no Spark job), else from Delta's history."""
    from lakeml.core import delta_log

    known = delta_log.history(path, limit)
    if known is not None:
        return known
    history = DeltaTable.forPath(spark, path)
    rows = (history.history(limit) if limit else history.history()).select(
        "version", "operation", "userMetadata"
    )
    return [r.asDict() for r in rows.collect()]


def describe(spark: SparkSession, path: str) -> dict[str, Any]:
    """Path, Delta version and row count of a table: from the Delta log's file statistics
    when they answer exactly (no Spark job), else from Spark."""
    from lakeml.core import delta_log

    known = delta_log.facts(path)
    if known is not None:
        return {"path": path, "version": known.version, "rows": known.rows}
    return {"path": path, "version": version(spark, path), "rows": count(spark, path)}


def partition_values(spark: SparkSession, path: str, column: str) -> set[Any] | None:
    """The values of partition `column` that hold rows (None: no table): from the log's
    file entries when it answers, else a Spark job."""
    if not exists(spark, path):
        return None
    from lakeml.core import delta_log

    known = delta_log.facts(path)
    if known is not None:
        return known.partition_values(column)
    return {r[column] for r in read(spark, path).select(column).distinct().collect()}


def partition_range(path: str, column: str, version: int | None = None) -> tuple[Any, Any] | None:
    """First and last value of a date partition column over the rows at `version`, from the
    log's file entries; None when the log cannot answer (the caller asks Spark)."""
    from lakeml.core import delta_log

    return delta_log.date_range(path, column, version)


def count(spark: SparkSession, path: str) -> int:
    return read(spark, path).count() if exists(spark, path) else 0


def _save(
    df: DataFrame,
    path: str,
    mode: str,
    options: dict[str, Any],
    partition_by: list[str] | None,
    metadata: dict[str, Any] | None = None,
    stats_columns: Sequence[str] | None = None,
) -> None:
    """The one Delta writer: `mode`, writer options, partitioning, and `metadata` stored as
    JSON in the commit's `userMetadata` (in the same atomic commit as the rows).

    `stats_columns`: the columns whose min/max the log keeps per file, set when the write
    creates the table (None: Delta's default, the first 32 columns; []: row counts only).
    Each file's statistics are computed as it is written, over every row and column they
    cover; a column nothing filters on (a partition column prunes by its value instead)
    costs that work for no skipping."""
    options = {**options, **_stats_property(stats_columns)}
    writer = df.write.format("delta").mode(mode).options(**{k: str(v) for k, v in options.items()})
    if metadata is not None:
        writer = writer.option("userMetadata", json.dumps(metadata, sort_keys=True))
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    table = "/".join(path.rstrip("/").split("/")[-2:])
    failpoints.reach(f"write {table}", wait=False)
    # A rejected commit commits nothing, and every write here means the same rows when run
    # again (replaceWhere, a whole rebuild, an append, an idempotent append), so the retry
    # neither loses nor duplicates rows. Jitter keeps two losers from colliding again.
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            writer.save(path)
            return
        except Exception as exc:
            if not is_commit_conflict(exc):
                raise
            if attempt == WRITE_ATTEMPTS:
                raise LakemlError(
                    f"other writers kept committing to the Delta table at {path} while this "
                    f"run wrote to it ({WRITE_ATTEMPTS} attempts, the last rejected with "
                    f"{type(exc).__name__}); nothing of this write was committed: rerun the "
                    "command once the other run is done"
                ) from None
            failpoints.reach(f"retry {table}", wait=False)
            _pause(random.uniform(0, BACKOFF_SECONDS * 2 ** (attempt - 1)))


# `stats_columns` for a table whose readers filter on no column but its partitions.
NO_STATS: tuple[str, ...] = ()


def _stats_property(columns: Sequence[str] | None) -> dict[str, str]:
    """The table property that limits file statistics to `columns` (see `_save`)."""
    if columns is None:
        return {}
    if not columns:
        return {"delta.dataSkippingNumIndexedCols": "0"}
    return {"delta.dataSkippingStatsColumns": ",".join(columns)}


def replace_where(
    df: DataFrame,
    path: str,
    condition: str,
    partition_by: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    add_columns: bool = False,
    stats_columns: Sequence[str] | None = None,
) -> None:
    """Atomically replace the rows matching `condition` with `df` (create the table if new).
    `add_columns`: columns of `df` the table lacks are added (its other rows read null)."""
    options = {"replaceWhere": condition, **({"mergeSchema": "true"} if add_columns else {})}
    _save(df, path, "overwrite", options, partition_by, metadata, stats_columns)


def rebuild(
    df: DataFrame,
    path: str,
    partition_by: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    stats_columns: Sequence[str] | None = None,
) -> None:
    """Replace the whole table with `df`, schema included (a new table or a full refresh)."""
    options = {"overwriteSchema": "true"}
    _save(df, path, "overwrite", options, partition_by, metadata, stats_columns)


def append(
    df: DataFrame,
    path: str,
    partition_by: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    stats_columns: Sequence[str] | None = None,
) -> None:
    """Append `df` in one commit (creating the table if new). Delta records no commit for an
    append without rows to an existing table (see `append_once` for one that it records).
    A stage records in `metadata` what it has processed (see `commit_metadata`)."""
    _save(df, path, "append", {}, partition_by, metadata, stats_columns)


def append_once(
    df: DataFrame,
    path: str,
    app_id: str,
    version: int,
    partition_by: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    stats_columns: Sequence[str] | None = None,
) -> None:
    """Append once per (app_id, version) with Delta's idempotent writes: a replayed write
    (same app id, version not above the last one recorded) is skipped by Delta instead of
    appended twice. Unlike a plain append, the commit is recorded even when `df` is empty."""
    options = {"txnAppId": app_id, "txnVersion": version}
    _save(df, path, "append", options, partition_by, metadata, stats_columns)


def table_id(spark: SparkSession, path: str) -> str | None:
    """The Delta table's id: it changes when the table is deleted and created again, which
    its version number alone does not tell."""
    if not exists(spark, path):
        return None
    from lakeml.core import delta_log

    known = delta_log.table_id(path)
    if known is not None:
        return known
    return str(DeltaTable.forPath(spark, path).detail().select("id").first()["id"])


def commits_after(
    spark: SparkSession, path: str, version: int, latest: int
) -> list[dict[str, Any]] | None:
    """Each commit in `(version, latest]`, oldest first, as {"version", "operation",
    "metadata" (the `userMetadata` JSON object, {} if none)}; None when the retained history
    no longer reaches back to `version + 1` (Delta cleaned up older log entries), or no table.
    Reads only those commits' entries (`latest`: the newest version the caller read)."""
    if not exists(spark, path):
        return None
    if latest <= version:
        return []
    rows = _history(spark, path, latest - version)
    rows = sorted((r for r in rows if version < r["version"] <= latest), key=lambda r: r["version"])
    if not rows or rows[0]["version"] != version + 1:
        return None
    return [_commit(r) for r in rows]


def recent_commits(
    spark: SparkSession, path: str, limit: int = RECENT_COMMITS
) -> list[dict[str, Any]]:
    """The table's newest `limit` commits, newest first, as in `commits_after` ([]: no table)."""
    if not exists(spark, path):
        return []
    rows = _history(spark, path, limit)
    return [_commit(r) for r in sorted(rows, key=lambda r: -r["version"])]


def _commit(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": int(row["version"]),
        "operation": row["operation"],
        "metadata": _json_object(row["userMetadata"]),
    }


def commit_metadata(spark: SparkSession, path: str, key: str) -> Any | None:
    """`key`'s value in the newest commit whose `userMetadata` (a JSON object) has it, or None
    when no commit has it (or there is no table).

    Reads the last RECENT_COMMITS commits first, so other commits in between (OPTIMIZE, a
    manual fix) are skipped; the whole history only when none of those has the key.
    """
    if not exists(spark, path):
        return None
    for limit in (RECENT_COMMITS, None):
        rows = _history(spark, path, limit)
        for row in sorted(rows, key=lambda r: -r["version"]):
            found = _json_object(row["userMetadata"]).get(key)
            if found is not None:
                return found
        if limit is not None and len(rows) < limit:
            return None  # the whole history was already read
    return None


def _json_object(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
