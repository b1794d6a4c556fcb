"""`make install`'s verdict on the warm-up run that proves Spark and Delta work."""

from __future__ import annotations

import pytest

from lakeml.install import proven

COORDINATE = "io.delta:delta-spark_4.2_2.13:4.4.0"


def features(bronze_rows: int, rows: dict[str, int], reconciles: bool = True) -> dict:
    tables = {name: {"path": f"/lake/{name}", "version": 0, "rows": n} for name, n in rows.items()}
    return {"tables": tables, "this_run": {"bronze_rows": bronze_rows, "reconciles": reconciles}}


ROWS = {"bronze": 10, "silver": 8, "quarantine": 1, "features": 3, "labels": 0}


def test_tables_that_hold_the_generated_lines_pass_without_labels() -> None:
    line = proven("4.2.0", COORDINATE, 10, features(10, ROWS))
    assert line == (
        f"Spark 4.2.0 with Delta ({COORDINATE}): ok, 10 generated lines -> 3 feature rows, 0 labels"
    )


@pytest.mark.parametrize(
    ("bronze_rows", "rows", "reconciles", "named"),
    [
        (10, {**ROWS, "features": 0}, True, "generated lines: features empty"),
        (10, {**ROWS, "silver": 0, "features": 0}, True, "lines: silver, features empty"),
        (9, ROWS, True, "lines: bronze took 9 of the 10 generated lines"),
        (10, ROWS, False, "lines: silver does not reconcile with bronze"),
        (9, {**ROWS, "features": 0}, False, "features empty; bronze took 9 of the 10 generated"),
    ],
)
def test_an_empty_or_unreconciled_table_fails_the_install_in_one_line(
    bronze_rows: int, rows: dict[str, int], reconciles: bool, named: str
) -> None:
    with pytest.raises(SystemExit) as failed:
        proven("4.2.0", COORDINATE, 10, features(bronze_rows, rows, reconciles))
    message = str(failed.value)
    assert message.startswith(f"install check failed: Spark 4.2.0 with Delta ({COORDINATE}) on 10")
    assert named in message and "\n" not in message
