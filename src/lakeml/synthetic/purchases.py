"""Synthetic retail purchase logs whose churn follows observable behaviour.

The behaviour model (`simulate`, numpy on the driver, seeded by the config): about half the
customers are there on day 0, the rest sign up uniformly over the first 60% of the period.
Each buys at a latent daily rate (lognormal, median 0.12: every week or two), with a mild
weekly rhythm, from a preferred channel and a few preferred product categories. About 40%
churn on a day drawn uniformly after signup: over the 14-35 days before it their rate fades
linearly to a fifth and they are never seen again. A purchase is returned (mostly within 30
days) with probability 5%, 15% while its buyer is fading. So recent counts, days since the
last purchase, recent-vs-earlier trends and returns predict "no purchase in the next 28
days" well, but not perfectly: quiet loyal customers look like fading ones.

`render_purchase_files` writes one `YYYY-MM-DD-purchases.csv` per day (a header, then the
events sorted by time) and adds dirty copies next to their clean originals at the config's
rates (as fractions of clean events): exact duplicates, lines cut short, an empty
customer_id, a negative quantity. `dirt.logged_out_rate` does not apply to a purchase log and
is ignored. The same config and seed always give byte-identical files.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lakeml.core.config import DirtConfig, GenerateConfig
from lakeml.core.files import write_files

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

HEADER = "customer_id,purchased_at,type,product,quantity,amount,channel"
PRODUCTS = ("grocery", "electronics", "clothing", "home", "beauty", "toys", "sports", "books")
CHANNELS = ("store", "online", "app")
DAY_S = 86_400
_POPULARITY = np.array([0.30, 0.06, 0.15, 0.12, 0.12, 0.07, 0.08, 0.10])
_UNIT_PRICE = np.array([6.5, 140.0, 32.0, 38.0, 16.0, 22.0, 45.0, 14.0])  # medians
_EXTRA_QUANTITY = np.array([1.2, 0.05, 0.5, 0.3, 0.5, 0.4, 0.2, 0.3])  # Poisson mean above 1
_CHANNEL_SHARE = np.array([0.5, 0.3, 0.2])
_WEEKLY = np.array([0.9, 0.9, 0.95, 1.0, 1.1, 1.25, 0.9])  # Monday .. Sunday, mean 1
_STORE_HOURS = np.r_[np.zeros(8), np.ones(3), np.full(3, 1.5), np.ones(2), np.full(3, 2.0),
                     np.ones(2), np.zeros(3)]  # fmt: skip
_REMOTE_HOURS = np.r_[np.full(7, 0.2), np.ones(12), np.full(4, 2.0), np.full(1, 0.6)]
MEDIAN_RATE = 0.12
CHURN_SHARE = 0.4
RETURN_P, RETURN_P_FADING = 0.05, 0.15


@dataclass(frozen=True)
class PurchaseResult:
    """What `generate_purchases` wrote. Silver keeps `lines - files (headers) - duplicates -
    malformed - missing_field - bad_value` rows, which equals `events`."""

    files: int
    lines: int
    events: int
    customers: int
    churned_customers: int
    duplicates: int
    malformed: int
    missing_field: int
    bad_value: int

    @property
    def users(self) -> int:
        """`customers`, under the name the eventsim result uses."""
        return self.customers

    def as_dict(self) -> dict[str, int]:
        """The counts by name, in field order (the JSON summary prints this)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Simulation:
    """Per customer (index i is `C{i+1:06d}`): signup and churn day (`days` when the customer
    does not churn in the period; every event is before the churn day). Per event, sorted by
    time: customer, seconds since the start, return flag, product, quantity, amount in cents
    and channel (indexes into PRODUCTS and CHANNELS)."""

    signup_day: np.ndarray
    churn_day: np.ndarray
    customer: np.ndarray
    second: np.ndarray
    is_return: np.ndarray
    product: np.ndarray
    quantity: np.ndarray
    cents: np.ndarray
    channel: np.ndarray


def generate_purchases(spark: SparkSession, cfg: GenerateConfig, output: str) -> PurchaseResult:
    """Write `cfg.days` daily CSV files of synthetic purchases under `output`; return the
    counts of what was written."""
    files, stats = render_purchase_files(cfg)
    write_files(spark, output, files)
    return PurchaseResult(**stats)


def render_purchase_files(cfg: GenerateConfig) -> tuple[dict[str, bytes], dict[str, int]]:
    """The day files (name -> bytes) and stats of `generate_purchases`, without storage."""
    start = dt.date.fromisoformat(cfg.start_date)
    sim = simulate(cfg)
    lines = _clean_lines(sim, start)
    dirt_rng = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(3)[2])
    extras, counts = _dirt(dirt_rng, cfg.dirt, lines)
    by_day: list[list[str]] = [[HEADER] for _ in range(cfg.days)]
    for i, (day, line) in enumerate(zip((sim.second // DAY_S).tolist(), lines, strict=True)):
        by_day[day].append(line)
        if i in extras:
            by_day[day].append(extras[i])
    files = {
        f"{start + dt.timedelta(days=d)}-purchases.csv": "".join(f"{x}\n" for x in day).encode()
        for d, day in enumerate(by_day)
    }
    seen = np.unique(sim.customer)
    stats = {
        "files": len(files),
        "lines": sum(len(day) for day in by_day),
        "events": len(lines),
        "customers": len(seen),
        "churned_customers": int((sim.churn_day[seen] < cfg.days).sum()),
        **counts,
    }
    return files, stats


def simulate(cfg: GenerateConfig) -> Simulation:
    """Draw the customers and their purchases and returns (the model is in the module doc)."""
    n, days = cfg.users, cfg.days
    behaviour, buying, _ = (
        np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(3)
    )
    late = behaviour.random(n) < 0.5
    signup = np.where(late, np.floor(behaviour.random(n) * 0.6 * days), 0).astype(np.int64)
    churns = behaviour.random(n) < CHURN_SHARE
    churn_at = signup + 1 + np.floor(behaviour.random(n) * (days - signup - 1)).astype(np.int64)
    churn = np.where(churns, churn_at, days)
    fade_days = behaviour.integers(14, 36, n)
    rate = MEDIAN_RATE * behaviour.lognormal(0.0, 0.6, n)
    preferred = behaviour.choice(3, n, p=_CHANNEL_SHARE)
    taste = np.cumsum(behaviour.dirichlet(_POPULARITY * 4.0, n), axis=1)

    day = np.arange(days)
    weekday = (dt.date.fromisoformat(cfg.start_date).weekday() + day) % 7
    left = churn[:, None] - day  # days until the churn day
    fading = churns[:, None] & (left >= 1) & (left <= fade_days[:, None])
    fade = np.where(fading, 0.2 + 0.8 * (left - 1) / fade_days[:, None], 1.0)
    active = (day >= signup[:, None]) & (left >= 1)
    counts = buying.poisson(rate[:, None] * _WEEKLY[weekday] * fade * active)
    flat = np.repeat(np.arange(n * days), counts.ravel())
    cust, bought = flat // days, flat % days
    k = len(cust)
    product = np.minimum((buying.random(k)[:, None] > taste[cust]).sum(axis=1), len(PRODUCTS) - 1)
    quantity = 1 + buying.poisson(_EXTRA_QUANTITY[product])
    unit = np.maximum(50, np.round(_UNIT_PRICE[product] * buying.lognormal(0.0, 0.45, k) * 100))
    cents = quantity * unit.astype(np.int64)
    elsewhere = buying.choice(3, k, p=_CHANNEL_SHARE)
    channel = np.where(buying.random(k) < 0.8, preferred[cust], elsewhere)

    # Returns: same item, a few days later; dropped if that falls after the period or churn.
    p_return = np.where(fading.ravel()[flat], RETURN_P_FADING, RETURN_P)
    returned_at = bought + 1 + np.floor(buying.exponential(6.0, k)).astype(np.int64)
    back = (buying.random(k) < p_return) & (returned_at < churn[cust])
    src = np.flatnonzero(back)
    event_day = np.r_[bought, returned_at[src]]
    channel = np.r_[channel, channel[src]]
    hour = np.where(
        channel == 0,
        buying.choice(24, len(event_day), p=_STORE_HOURS / _STORE_HOURS.sum()),
        buying.choice(24, len(event_day), p=_REMOTE_HOURS / _REMOTE_HOURS.sum()),
    )
    second = event_day * DAY_S + hour * 3600 + buying.integers(0, 3600, len(event_day))
    order = np.argsort(second, kind="stable")
    return Simulation(
        signup_day=signup,
        churn_day=churn,
        customer=np.r_[cust, cust[src]][order],
        second=second[order],
        is_return=np.r_[np.zeros(k, bool), np.ones(len(src), bool)][order],
        product=np.r_[product, product[src]][order],
        quantity=np.r_[quantity, quantity[src]][order],
        cents=np.r_[cents, cents[src]][order],
        channel=channel[order],
    )


def _clean_lines(sim: Simulation, start: dt.date) -> list[str]:
    """One CSV line per event, in the simulation's (time) order."""
    ids = np.array([f"C{i + 1:06d}" for i in range(len(sim.signup_day))], dtype=object)
    stamps = np.datetime_as_string(np.datetime64(start, "s") + sim.second, unit="s")
    columns = (
        ids[sim.customer],
        stamps.tolist(),
        np.where(sim.is_return, "return", "purchase").tolist(),
        np.array(PRODUCTS, dtype=object)[sim.product],
        sim.quantity.tolist(),
        (sim.cents // 100).tolist(),
        (sim.cents % 100).tolist(),
        np.array(CHANNELS, dtype=object)[sim.channel],
    )
    line = "{},{}Z,{},{},{},{}.{:02d},{}".format
    return [line(*row) for row in zip(*columns, strict=True)]


def _dirt(
    rng: np.random.Generator, rates: DirtConfig, lines: list[str]
) -> tuple[dict[int, str], dict[str, int]]:
    """A dirty copy to write after some clean lines (by index), and the count of each kind."""
    n = len(lines)
    wanted = {
        "duplicates": rates.duplicate_rate,
        "malformed": rates.malformed_rate,
        "missing_field": rates.missing_field_rate,
        "bad_value": rates.bad_value_rate,
    }
    sources = rng.permutation(n)
    extras: dict[int, str] = {}
    counts: dict[str, int] = {}
    at = 0
    for kind, rate in wanted.items():
        chosen = sources[at : at + round(rate * n)].tolist()
        at += len(chosen)
        counts[kind] = len(chosen)
        for i in sorted(chosen):
            extras[i] = _corrupt(rng, kind, lines[i])
    return extras, counts


def _corrupt(rng: np.random.Generator, kind: str, line: str) -> str:
    """A dirty variant of a clean line: a copy, cut short, without its id, or a bad quantity."""
    if kind == "duplicates":
        return line
    if kind == "malformed":  # the writer died mid-line: before the last comma, so fields lack
        return line[: int(rng.integers(1, line.rindex(",") + 1))]
    fields = line.split(",")
    if kind == "missing_field":
        fields[0] = ""
    else:
        fields[4] = str(-int(fields[4]))
    return ",".join(fields)
