from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from lakeml.core.config import DirtConfig, GenerateConfig
from lakeml.core.errors import LakemlError
from lakeml.synthetic.generate import GenerateResult, generate_events, render_files

KEYS = [
    "artist", "auth", "firstName", "gender", "itemInSession", "lastName", "length", "level",
    "location", "method", "page", "registration", "sessionId", "song", "status", "ts",
    "userAgent", "userId",
]  # fmt: skip
REQUIRED = ("ts", "page", "sessionId", "itemInSession", "auth", "level")
DAY_MS = 86_400_000
OCT_1_2018_MS = 1_538_352_000_000  # 2018-10-01T00:00:00Z
NO_DIRT = DirtConfig(
    logged_out_rate=0.0,
    duplicate_rate=0.0,
    malformed_rate=0.0,
    missing_field_rate=0.0,
    bad_value_rate=0.0,
)
# High rates so a tiny run still holds every kind of dirt.
LOTS_OF_DIRT = DirtConfig(
    logged_out_rate=0.05,
    duplicate_rate=0.02,
    malformed_rate=0.01,
    missing_field_rate=0.01,
    bad_value_rate=0.01,
)


def tiny(**kw: object) -> GenerateConfig:
    base: dict[str, object] = {"users": 20, "days": 5, "start_date": "2018-10-01", "seed": 7}
    base.update(kw)
    return GenerateConfig(**base)  # type: ignore[arg-type]


def data_files(folder: Path) -> dict[str, bytes]:
    """The files Spark would read: Hadoop's hidden .crc side files are skipped."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


def all_lines(folder: Path) -> list[str]:
    return [line for data in data_files(folder).values() for line in data.decode().splitlines()]


def classify(line: str) -> tuple[str, dict | None]:
    """Judge a line the way silver does, independently of the generator's code."""
    try:
        event = json.loads(line)
    except ValueError:
        return "malformed", None
    if any(key not in event for key in (*REQUIRED, "userId")):
        return "missing_field", event
    if event["userId"] == "":
        return "logged_out", event
    typed = all(type(event[k]) is int for k in ("ts", "sessionId", "itemInSession"))
    if not typed or not isinstance(event["registration"], (int, float)):
        return "bad_value", event
    if (event["length"] is not None and event["length"] < 0) or event["ts"] < event["registration"]:
        return "bad_value", event
    return "clean", event


def test_same_seed_writes_identical_bytes_and_rerun_overwrites(
    spark: SparkSession, tmp_path: Path
) -> None:
    generate_events(spark, tiny(seed=7), str(tmp_path / "a"))
    generate_events(spark, tiny(seed=7), str(tmp_path / "b"))
    generate_events(spark, tiny(seed=8), str(tmp_path / "c"))
    generate_events(spark, tiny(seed=7), str(tmp_path / "c"))  # a rerun over seed 8's files

    a, b = data_files(tmp_path / "a"), data_files(tmp_path / "b")
    assert a == b
    assert data_files(tmp_path / "c") == a
    generate_events(spark, tiny(seed=8), str(tmp_path / "d"))
    assert data_files(tmp_path / "d") != a


def test_writes_one_file_per_day_with_each_event_in_its_day(
    spark: SparkSession, tmp_path: Path
) -> None:
    stats = generate_events(spark, tiny(dirt=NO_DIRT), str(tmp_path))

    files = data_files(tmp_path)
    assert sorted(files) == [
        "2018-10-01-events.json",
        "2018-10-02-events.json",
        "2018-10-03-events.json",
        "2018-10-04-events.json",
        "2018-10-05-events.json",
    ]
    assert stats.files == 5
    for day, name in enumerate(sorted(files)):
        lines = files[name].decode().splitlines()
        assert lines, f"{name} is empty"
        ts = [json.loads(line)["ts"] for line in lines]
        lo = OCT_1_2018_MS + day * DAY_MS
        assert all(lo <= t < lo + DAY_MS for t in ts)
        assert ts == sorted(ts)


def test_spark_reads_every_written_line(spark: SparkSession, tmp_path: Path) -> None:
    stats = generate_events(spark, tiny(dirt=LOTS_OF_DIRT), str(tmp_path))

    assert spark.read.text(str(tmp_path)).count() == stats.lines


def test_clean_lines_follow_the_eventsim_schema(spark: SparkSession, tmp_path: Path) -> None:
    generate_events(spark, tiny(dirt=NO_DIRT), str(tmp_path))

    events = [json.loads(line, object_pairs_hook=list) for line in all_lines(tmp_path)]
    assert events
    pages = Counter()
    for pairs in events:
        assert [k for k, _ in pairs] == KEYS
        e = dict(pairs)
        pages[e["page"]] += 1
        assert e["auth"] in ("Logged In", "Cancelled")
        assert isinstance(e["userId"], str) and e["userId"]
        assert type(e["ts"]) is int and type(e["sessionId"]) is int
        assert type(e["itemInSession"]) is int and e["itemInSession"] >= 0
        assert isinstance(e["registration"], (int, float)) and e["registration"] <= e["ts"]
        assert e["gender"] in ("M", "F") and e["level"] in ("free", "paid")
        assert re.fullmatch(r".+, [A-Z]{2}", e["location"])
        assert e["firstName"] and e["lastName"] and "Mozilla/5.0" in e["userAgent"]
        if e["page"] == "NextSong":
            assert type(e["length"]) is float and e["length"] > 0 and e["artist"] and e["song"]
            assert (e["method"], e["status"]) == ("PUT", 200)
        else:
            assert e["length"] is None and e["artist"] is None and e["song"] is None
    # Spot checks against eventsim: a PUT that changes state redirects, Error is a 404.
    by_page = {dict(p)["page"]: dict(p) for p in events}
    assert (by_page["Thumbs Up"]["method"], by_page["Thumbs Up"]["status"]) == ("PUT", 307)
    assert (by_page["Home"]["method"], by_page["Home"]["status"]) == ("GET", 200)
    assert pages["NextSong"] > pages["Home"] > 0


def test_stats_equal_counts_recomputed_from_the_files(spark: SparkSession, tmp_path: Path) -> None:
    stats = generate_events(spark, tiny(dirt=LOTS_OF_DIRT), str(tmp_path))

    lines = all_lines(tmp_path)
    kinds: Counter[str] = Counter()
    clean: list[str] = []
    clean_events: list[dict] = []
    for line in lines:
        kind, event = classify(line)
        kinds[kind] += 1
        if kind == "clean":
            clean.append(line)
            clean_events.append(event)  # type: ignore[arg-type]
        if kind == "logged_out":
            assert event is not None and event["auth"] in ("Logged Out", "Guest")
            assert event["firstName"] is None and event["registration"] is None
    distinct = set(clean)
    recomputed = {
        "files": 5,
        "lines": len(lines),
        "events": len(distinct),
        "users": len({e["userId"] for e in clean_events}),
        "churned_users": len(
            {e["userId"] for e in clean_events if e["page"] == "Cancellation Confirmation"}
        ),
        "logged_out": kinds["logged_out"],
        "duplicates": len(clean) - len(distinct),
        "malformed": kinds["malformed"],
        "missing_field": kinds["missing_field"],
        "bad_value": kinds["bad_value"],
    }
    assert stats.as_dict() == recomputed
    # Every kind of dirt is present, so the equality above is not trivially about zeros.
    assert min(recomputed[k] for k in ("logged_out", "duplicates", "malformed")) > 0
    assert min(recomputed[k] for k in ("missing_field", "bad_value")) > 0
    dirty = stats.logged_out + stats.malformed + stats.missing_field + stats.bad_value
    assert stats.lines - dirty - stats.duplicates == stats.events


def test_churned_users_leave_no_trace_after_cancellation_confirmation(
    spark: SparkSession, tmp_path: Path
) -> None:
    stats = generate_events(spark, tiny(users=60, days=21, dirt=NO_DIRT), str(tmp_path))

    events = [json.loads(line) for line in all_lines(tmp_path)]
    confirmed = {e["userId"]: e for e in events if e["page"] == "Cancellation Confirmation"}
    assert len(confirmed) == stats.churned_users > 0
    for user, confirmation in confirmed.items():
        assert confirmation["auth"] == "Cancelled"
        own = [e for e in events if e["userId"] == user]
        assert max(e["ts"] for e in own) == confirmation["ts"]
        session = sorted(
            (e for e in own if e["sessionId"] == confirmation["sessionId"]),
            key=lambda e: e["itemInSession"],
        )
        assert [e["page"] for e in session[-2:]] == ["Cancel", "Cancellation Confirmation"]
    cancelled = {e["userId"] for e in events if e["auth"] == "Cancelled"}
    assert cancelled == set(confirmed)


def test_zero_rates_write_no_dirt(spark: SparkSession, tmp_path: Path) -> None:
    stats = generate_events(spark, tiny(dirt=NO_DIRT), str(tmp_path))

    lines = all_lines(tmp_path)
    assert {classify(line)[0] for line in lines} == {"clean"}
    assert len(set(lines)) == len(lines) == stats.lines == stats.events
    dirt = ("logged_out", "duplicates", "malformed", "missing_field", "bad_value")
    assert {k: stats.as_dict()[k] for k in dirt} == dict.fromkeys(dirt, 0)


def test_result_is_frozen_and_holds_render_files_stats_in_order() -> None:
    files, stats = render_files(tiny())

    result = GenerateResult(**stats)
    assert result.as_dict() == stats and list(result.as_dict()) == list(stats)
    assert result.files == len(files) == 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.lines = 0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: tiny(days=0), r"generate\.days"),
        (lambda: tiny(users=0), r"generate\.users"),
        (lambda: tiny(start_date="01/10/2018"), r"YYYY-MM-DD"),
        (lambda: tiny(dirt=DirtConfig(duplicate_rate=1.5)), r"generate\.dirt\.duplicate_rate"),
    ],
    ids=["days", "users", "start_date", "dirt"],
)
def test_bad_config_is_a_user_error_and_writes_nothing(
    spark: SparkSession, tmp_path: Path, make: Callable[[], GenerateConfig], message: str
) -> None:
    # The config itself rejects the value, before anything runs.
    with pytest.raises(LakemlError, match=message):
        generate_events(spark, make(), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
