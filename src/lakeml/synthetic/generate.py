"""Synthetic Sparkify/eventsim-schema event logs whose churn follows observable behaviour.

`generate_events` simulates users day by day on the driver with numpy (this is a test-data
tool, not a Spark job), renders one JSON line per event, injects real-world dirt on top at
the configured rates and writes one `YYYY-MM-DD-events.json` file per day through the
filesystem edge (`lakeml.core.files`), so `output` may be a local path or any Hadoop URI.
The same config and seed always give byte-identical files.

The plan, one module per step:
- `catalogue`: pages, word lists, the song catalogue and the users with their latent traits;
- `simulation`: the day-by-day sessions, level changes and churn (the model is described
  there);
- `rendering`: sessions to timed events, events to JSON lines with dirt, lines to day files.

`generate` picks the generator by `generate.kind`; `purchases` is the other one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import numpy as np
from pyspark.sql import SparkSession

from lakeml.core.config import GenerateConfig
from lakeml.core.files import write_files
from lakeml.synthetic.catalogue import DAY_MS, Catalogue, Users
from lakeml.synthetic.purchases import PurchaseResult, generate_purchases
from lakeml.synthetic.rendering import expand, render
from lakeml.synthetic.simulation import simulate


@dataclass(frozen=True)
class GenerateResult:
    """What `generate_events` wrote: files, lines (every line written), events (clean ones),
    users, churned_users and the count of each kind of dirty line.

    Silver keeps `lines - logged_out - malformed - missing_field - bad_value - duplicates`
    rows, which equals `events`.
    """

    files: int
    lines: int
    events: int
    users: int
    churned_users: int
    logged_out: int
    duplicates: int
    malformed: int
    missing_field: int
    bad_value: int

    def as_dict(self) -> dict[str, int]:
        """The counts by name, in field order (the JSON summary prints this)."""
        return dataclasses.asdict(self)


def generate(
    spark: SparkSession, cfg: GenerateConfig, output: str
) -> GenerateResult | PurchaseResult:
    """Write the synthetic data `cfg.kind` names under `output`: eventsim JSON lines or a
    purchase log (`lakeml.synthetic.purchases`). Both results have `files`, `lines`, `users`
    and `as_dict()`."""
    if cfg.kind == "purchases":
        return generate_purchases(spark, cfg, output)
    return generate_events(spark, cfg, output)


def generate_events(spark: SparkSession, cfg: GenerateConfig, output: str) -> GenerateResult:
    """Write `cfg.days` daily JSON-lines files of synthetic events under `output`; return
    the counts of what was written."""
    files, stats = render_files(cfg)
    write_files(spark, output, files)
    return GenerateResult(**stats)


def render_files(cfg: GenerateConfig) -> tuple[dict[str, bytes], dict[str, int]]:
    """The day files (name -> bytes) and stats of `generate_events`, without touching storage."""
    start_date = _validate(cfg)
    start_ms = (start_date - dt.date(1970, 1, 1)).days * DAY_MS
    seeds = np.random.SeedSequence(cfg.seed).spawn(4)
    behaviour, timing, catalogue_rng, dirt_rng = (np.random.default_rng(s) for s in seeds)
    catalogue = Catalogue.build(catalogue_rng)
    users = Users.draw(behaviour, cfg.users, cfg.days, start_ms)
    sessions = simulate(behaviour, users, cfg.days, start_date.weekday())
    events = expand(timing, catalogue, users, sessions, cfg.days, start_ms)
    return render(dirt_rng, cfg, catalogue, users, events, start_date)


def _validate(cfg: GenerateConfig) -> dt.date:
    """The start date (users, days, the date's format and the dirt rates were checked when the
    config loaded)."""
    return dt.date.fromisoformat(cfg.start_date)
