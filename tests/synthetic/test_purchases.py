from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections import Counter
from pathlib import Path

import pandas as pd
from pyspark.sql import SparkSession
from sklearn.metrics import roc_auc_score

from lakeml.core.config import DirtConfig, GenerateConfig
from lakeml.synthetic.generate import generate
from lakeml.synthetic.purchases import PurchaseResult, render_purchase_files, simulate

HEADER = "customer_id,purchased_at,type,product,quantity,amount,channel"
COLUMNS = HEADER.split(",")
PRODUCTS = {"grocery", "electronics", "clothing", "home", "beauty", "toys", "sports", "books"}
NO_DIRT = DirtConfig(
    logged_out_rate=0.0,
    duplicate_rate=0.0,
    malformed_rate=0.0,
    missing_field_rate=0.0,
    bad_value_rate=0.0,
)
# High rates so a small run still holds every kind of dirt.
LOTS_OF_DIRT = DirtConfig(
    logged_out_rate=0.05,
    duplicate_rate=0.03,
    malformed_rate=0.02,
    missing_field_rate=0.02,
    bad_value_rate=0.02,
)


def cfg(**kw: object) -> GenerateConfig:
    base: dict[str, object] = {
        "kind": "purchases",
        "users": 40,
        "days": 20,
        "start_date": "2024-01-25",
        "seed": 3,
    }
    base.update(kw)
    return GenerateConfig(**base)  # type: ignore[arg-type]


def rows(files: dict[str, bytes]) -> list[dict[str, str]]:
    """Every line after the headers, parsed as CSV, in file order."""
    return [
        row
        for name in sorted(files)
        for row in csv.DictReader(io.StringIO(files[name].decode()), strict=True)
    ]


def parse_time(text: str) -> dt.datetime:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text), text
    return dt.datetime.fromisoformat(text)


def test_same_seed_gives_identical_bytes_and_another_seed_differs() -> None:
    a, _ = render_purchase_files(cfg(dirt=LOTS_OF_DIRT))
    b, _ = render_purchase_files(cfg(dirt=LOTS_OF_DIRT))
    c, _ = render_purchase_files(cfg(dirt=LOTS_OF_DIRT, seed=4))

    assert a == b
    assert c.keys() == a.keys() and c != a


def test_one_file_per_day_each_starting_with_the_header_even_when_empty() -> None:
    files, _ = render_purchase_files(cfg(users=2, days=10))

    assert list(files) == [
        "2024-01-25-purchases.csv",
        "2024-01-26-purchases.csv",
        "2024-01-27-purchases.csv",
        "2024-01-28-purchases.csv",
        "2024-01-29-purchases.csv",
        "2024-01-30-purchases.csv",
        "2024-01-31-purchases.csv",
        "2024-02-01-purchases.csv",
        "2024-02-02-purchases.csv",
        "2024-02-03-purchases.csv",
    ]
    assert all(data.decode().splitlines()[0] == HEADER for data in files.values())
    assert b"" in [data.removeprefix(f"{HEADER}\n".encode()) for data in files.values()]


def test_clean_lines_have_the_documented_columns_and_sit_in_their_day_in_time_order() -> None:
    files, stats = render_purchase_files(cfg(dirt=NO_DIRT))

    seen = 0
    for name, data in files.items():
        day = dt.date.fromisoformat(name.removesuffix("-purchases.csv"))
        lines = list(csv.reader(io.StringIO(data.decode())))
        assert lines[0] == COLUMNS
        times = []
        for line in lines[1:]:
            assert len(line) == 7, line
            row = dict(zip(COLUMNS, line, strict=True))
            assert re.fullmatch(r"C\d{6}", row["customer_id"])
            at = parse_time(row["purchased_at"])
            assert at.tzinfo == dt.timezone.utc and at.date() == day
            assert row["type"] in ("purchase", "return")
            assert row["product"] in PRODUCTS
            assert re.fullmatch(r"[1-9]\d*", row["quantity"])
            assert re.fullmatch(r"\d+\.\d\d", row["amount"]) and float(row["amount"]) > 0
            assert row["channel"] in ("store", "online", "app")
            times.append(at)
        assert times == sorted(times)
        seen += len(times)
    assert seen == stats["events"] > 0


def test_stats_reconcile_with_the_dirty_lines_counted_by_hand() -> None:
    files, stats = render_purchase_files(cfg(users=60, days=30, dirt=LOTS_OF_DIRT))

    headers = short = no_id = negative = 0
    full: list[str] = []
    for data in files.values():
        lines = data.decode().splitlines()
        headers += lines[0] == HEADER
        day_full = []
        for line in lines[1:]:
            fields = line.split(",")
            if len(fields) < 7:
                short += 1
            elif fields[0] == "":
                no_id += 1
            elif int(fields[4]) < 0:
                negative += 1
            else:
                day_full.append(line)
        full += day_full
    clean = len(set(full))
    duplicates = len(full) - clean
    total = sum(len(data.decode().splitlines()) for data in files.values())

    assert headers == stats["files"] == len(files)
    assert (duplicates, short, no_id, negative, clean) == (
        stats["duplicates"],
        stats["malformed"],
        stats["missing_field"],
        stats["bad_value"],
        stats["events"],
    )
    assert min(duplicates, short, no_id, negative) > 0
    assert total == stats["lines"] == headers + clean + duplicates + short + no_id + negative


def test_each_dirty_line_follows_its_clean_original() -> None:
    files, _ = render_purchase_files(cfg(users=60, days=30, dirt=LOTS_OF_DIRT))

    kinds = Counter()
    for data in files.values():
        lines = data.decode().splitlines()[1:]
        for before, line in zip(lines, lines[1:], strict=False):
            fields, original = line.split(","), before.split(",")
            if line == before:
                kinds["duplicate"] += 1
            elif len(fields) < 7:
                assert before.startswith(line)
                kinds["malformed"] += 1
            elif fields[0] == "":
                assert fields[1:] == original[1:]
                kinds["missing_field"] += 1
            elif int(fields[4]) < 0:
                assert fields[:4] + fields[5:] == original[:4] + original[5:]
                assert int(fields[4]) == -int(original[4])
                kinds["bad_value"] += 1
    assert set(kinds) == {"duplicate", "malformed", "missing_field", "bad_value"}


def test_churned_customers_never_buy_after_their_churn_day() -> None:
    config = cfg(users=300, days=150, dirt=NO_DIRT)
    sim = simulate(config)
    files, stats = render_purchase_files(config)

    start = dt.date(2024, 1, 25)
    first, last = {}, {}
    for row in rows(files):
        customer = int(row["customer_id"][1:]) - 1
        day = (parse_time(row["purchased_at"]).date() - start).days
        first[customer] = min(first.get(customer, day), day)
        last[customer] = max(last.get(customer, -1), day)
    churned = [c for c in last if sim.churn_day[c] < 150]
    assert 0.3 < (sim.churn_day < 150).mean() < 0.5
    assert len(churned) == stats["churned_customers"] > 0
    assert all(last[c] < sim.churn_day[c] for c in churned)
    assert all(first[c] >= sim.signup_day[c] for c in first)


def test_returns_are_few_and_repeat_an_earlier_purchase_of_the_customer() -> None:
    files, _ = render_purchase_files(cfg(users=300, days=150, dirt=NO_DIRT))

    bought: set[tuple[str, ...]] = set()
    returns = purchases = 0
    for row in rows(files):
        item = tuple(row[c] for c in ("customer_id", "product", "quantity", "amount", "channel"))
        if row["type"] == "purchase":
            bought.add(item)
            purchases += 1
        else:
            assert item in bought, row
            returns += 1
    assert 0.02 < returns / (returns + purchases) < 0.08


def test_fewer_recent_purchases_predict_no_purchase_in_the_next_four_weeks() -> None:
    files, _ = render_purchase_files(cfg(users=300, days=150, dirt=NO_DIRT))

    events = pd.DataFrame(rows(files))
    events["day"] = (
        pd.to_datetime(events["purchased_at"]).dt.tz_localize(None) - pd.Timestamp("2024-01-25")
    ).dt.days
    buys = events[events["type"] == "purchase"]
    known = buys.loc[buys["day"] < 100, "customer_id"].unique()

    def count(lo: int, hi: int) -> pd.Series:
        window = buys[(buys["day"] >= lo) & (buys["day"] < hi)]
        return window.groupby("customer_id").size().reindex(known, fill_value=0)

    quiet_next = (count(100, 128) == 0).astype(int)
    auc = roc_auc_score(quiet_next, -count(72, 100))
    print(f"AUC of -purchases in days 72..99 for no purchase in days 100..127: {auc:.3f}")
    assert 0.2 < quiet_next.mean() < 0.8
    assert 0.65 < auc < 0.99


def test_generate_dispatches_purchases_and_writes_the_rendered_files(
    spark: SparkSession, tmp_path: Path
) -> None:
    config = cfg(users=10, days=3, dirt=LOTS_OF_DIRT)

    result = generate(spark, config, str(tmp_path / "raw"))

    files, stats = render_purchase_files(config)
    written = {
        p.name: p.read_bytes()
        for p in sorted((tmp_path / "raw").iterdir())
        if not p.name.startswith(".")
    }
    assert written == files
    assert isinstance(result, PurchaseResult)
    assert result.as_dict() == stats
    assert result.users == result.customers == stats["customers"]
    assert result.lines == sum(len(d.decode().splitlines()) for d in files.values())
