"""Checks that training cannot succeed, answered from the Delta logs before Spark starts.

The labels table's log holds, per data file, its snapshot (the partition value), its row
count and the min/max label. That is enough to say, in well under a second, that there
are too few labelled snapshots for the out-of-time split, that one of its windows holds
one class only, or (for a random or column split, whose windows only Spark can draw) that
every labelled row is one class. Each check raises only when training on Spark would fail
the same way (with the same message where the logs know the window's rows); what the logs
cannot settle is left to `trainset.load_training_set`, which checks it all again.
"""

from __future__ import annotations

import os
from datetime import date

from lakeml.core import delta_log
from lakeml.core.config import TrainConfig
from lakeml.core.errors import LakemlError
from lakeml.core.paths import local_path
from lakeml.training import trainset


def check_tables(t: TrainConfig, f_path: str, l_path: str) -> None:
    """Raise what training would raise about the gold tables, when their logs tell."""
    for path, what in ((f_path, "features"), (l_path, "labels")):
        folder = local_path(path)
        if folder is not None and not os.path.isdir(os.path.join(folder, "_delta_log")):
            raise trainset.missing_table_error(what, path)
    classes = label_classes(t, l_path)
    if classes is None:
        return
    # A random or column split divides the entities, which only Spark can do.
    split = None
    if t.split.method == "out_of_time":
        split = trainset.split_snapshots(
            list(classes), t.split.test_snapshots, t.split.validation_snapshots
        )
    # Training splits the snapshots that have features rows too; when the features table
    # lacks one of these, its windows differ from these and only Spark can tell.
    features = delta_log.facts(f_path)
    column = f"partition.{t.snapshot_col}"
    if not classes or features is None:
        return
    if not set(classes) <= {f.get(column) for f in features.files}:
        return
    if split is None:
        # Whatever the entities' split, when every labelled row is one class, so is each window.
        seen = set().union(*(values for values, _ in classes.values()))
        if len(seen) == 1:
            rows = sum(n for _, n in classes.values())
            raise one_class_table_error(sorted(classes), seen == {1}, rows)
        return
    for window, dates in split.windows():
        seen = set().union(*(classes[d][0] for d in dates))
        if len(seen) == 1:
            rows = sum(classes[d][1] for d in dates)
            raise trainset.one_class_error(window, dates, seen == {1}, rows)


def label_classes(t: TrainConfig, l_path: str) -> dict[date, tuple[set[int], int]] | None:
    """Per labelled snapshot: the label values present and the rows, from file statistics;
    None unless every file answers (partitioned by the snapshot, labels 0/1 with stats)."""
    known = delta_log.facts(l_path)
    if known is None:
        return None
    out: dict[date, tuple[set[int], int]] = {}
    for f in known.files:
        if not f["num_records"]:
            continue
        snapshot = f.get(f"partition.{t.snapshot_col}")
        low, high = f.get(f"min.{t.label_col}"), f.get(f"max.{t.label_col}")
        if not isinstance(snapshot, date) or low not in (0, 1) or high not in (0, 1):
            return None
        values, rows = out.get(snapshot, (set(), 0))
        out[snapshot] = (values | {low, high}, rows + int(f["num_records"]))
    return out


def one_class_table_error(dates: list[date], churned: bool, rows: int) -> LakemlError:
    """The error for a labels table whose labelled rows are all one class: every window of
    any split then holds that class only."""
    only = "churned" if churned else "non-churned"
    return LakemlError(
        f"every labelled row of the labels table is {only} ({rows} rows; snapshots "
        f"{', '.join(d.isoformat() for d in dates)}), so each split window would have only "
        f"{only} rows; a churn model needs both classes in every window: check the labels "
        "(source.table.positive_values, the label column) or add entities that churn"
    )
