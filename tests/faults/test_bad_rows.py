"""Bad rows of every kind in a raw event log: `lakeml features` keeps each good line once,
sends each bad one to quarantine with its rule and its original bytes, and its counts
reconcile; nothing is lost and nothing raises.

`ROW_KINDS` is the catalogue the README's totals count.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lakeml.cli import main

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.faults

DAY_MS = 86_400_000
TS = 1_538_740_798_258  # 2018-10-05 12:39:58 UTC
REGISTERED = 1_538_533_083_400  # three days earlier


def event(**changes: object) -> dict:
    base = {
        "artist": "DJ Lonely",
        "auth": "Logged In",
        "firstName": "Ava",
        "gender": "F",
        "itemInSession": 0,
        "lastName": "Cooper",
        "length": 199.1,
        "level": "free",
        "location": "New York, NY",
        "method": "PUT",
        "page": "NextSong",
        "registration": REGISTERED,
        "sessionId": 51,
        "song": "Find My Tigers",
        "status": 200,
        "ts": TS,
        "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_13_6)",
        "userId": "100001",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def line(record: dict) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode()


# kind -> (raw line, the rule that must quarantine it)
ROW_KINDS: dict[str, tuple[bytes, str]] = {
    "not JSON": (b'{"ts": 1538740798258, "userId": ', "malformed_json"),
    "missing timestamp": (line(event(ts=..., itemInSession=5)), "missing_field:ts"),
    "missing session": (line(event(sessionId=..., itemInSession=6)), "missing_field:sessionId"),
    "number as text": (line(event(itemInSession="seven")), "wrong_type:itemInSession"),
    "empty user id (logged out)": (line(event(userId="", itemInSession=8)), "missing_user_id"),
    "negative song length": (line(event(length=-3.5, itemInSession=9)), "negative_length"),
    "event before registration": (
        line(event(registration=TS + DAY_MS, itemInSession=10)),
        "event_before_registration",
    ),
    "timestamps in seconds": (
        line(event(ts=TS // 1000, registration=REGISTERED // 1000, itemInSession=11)),
        "ts_too_early",
    ),
    "registration in seconds, ts in ms": (
        line(event(registration=REGISTERED // 1000, itemInSession=14)),
        "registration_too_early",
    ),
    "timestamp in 2100": (line(event(ts=4_102_448_400_000, itemInSession=12)), "ts_in_future"),
    "invalid UTF-8 bytes": (
        line(event(itemInSession=13, song="caf_")).replace(b"caf_", b"caf\xe9"),
        "invalid_utf8",
    ),
}
GOOD = [line(event(itemInSession=i, userId=u)) for i in range(3) for u in ("100001", "100002")]
DUPLICATE = GOOD[0]  # the same event twice: kept once, counted as a duplicate


def quarantine_bytes(root: Path) -> dict[str, bytes]:
    """Quarantined lines by rule, as the bytes the table holds (pyarrow keeps them raw)."""
    table = DeltaTable(str(root / "silver" / "quarantine")).to_pyarrow_table(
        columns=["value", "rule"]
    )
    values = table.column("value").cast("binary").to_pylist()
    return dict(zip(table.column("rule").to_pylist(), values, strict=True))


def test_every_bad_row_is_quarantined_with_its_rule_and_bytes(spark, tmp_path: Path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    lines = [*GOOD, DUPLICATE, *[bad for bad, _ in ROW_KINDS.values()]]
    (raw / "2018-10-05-events.json").write_bytes(b"\n".join(lines) + b"\n")
    root = tmp_path / "root"
    status = main(["features", "--set", f"storage.root={root}", "--input", str(raw)])
    out = capsys.readouterr()
    assert status == 0, out.err
    assert "Traceback" not in out.err
    this_run = json.loads(out.out.strip().splitlines()[-1])["features"]["this_run"]
    assert this_run["bronze_rows"] == len(lines)
    assert this_run["silver_inserted"] == len(GOOD)
    assert this_run["duplicates_removed"] == 1
    assert this_run["quarantine_by_rule"] == {rule: 1 for _, rule in ROW_KINDS.values()}
    assert this_run["reconciles"] is True
    assert quarantine_bytes(root) == {rule: bad for bad, rule in ROW_KINDS.values()}
