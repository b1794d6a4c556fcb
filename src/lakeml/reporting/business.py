"""What a retention campaign is worth: pure arithmetic over the model's test-window figures and
the business assumptions in config (`report.*`), every assumption stated where it is used."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from lakeml.core.config import ReportConfig


@dataclass(frozen=True)
class Campaign:
    """Contacting the top `pct` % of `rows` scored customers."""

    pct: float
    contacts: int
    precision: float  # the test window's churn rate among its top pct %
    expected_churners: float
    expected_saved: float
    cost: float
    value: float

    @property
    def net(self) -> float:
        return self.value - self.cost


def campaign(rows: int, pct: float, precision: float, r: ReportConfig) -> Campaign:
    """Contacts = ceil(rows * pct / 100); churners reached = contacts * precision; saved =
    churners * save_rate; value = saved * value_per_retained; cost = contacts * cost."""
    contacts = math.ceil(rows * pct / 100)
    churners = contacts * precision
    saved = churners * r.save_rate
    return Campaign(
        pct=pct,
        contacts=contacts,
        precision=precision,
        expected_churners=churners,
        expected_saved=saved,
        cost=contacts * r.cost_per_contact,
        value=saved * r.value_per_retained,
    )


def value_curve(deciles: pd.DataFrame, rows: int, r: ReportConfig) -> list[Campaign]:
    """A campaign per cutoff at each test-window decile (10%, 20%, ... of the ranked rows),
    the precision there being the cumulative churn rate of the top deciles."""
    ordered = deciles.sort_values("decile")
    churners = ordered["churners"].cumsum()
    ranked = ordered["rows"].cumsum()
    deciles_total = len(ordered)
    return [
        campaign(rows, 100 * d / deciles_total, float(c / n), r)
        for d, n, c in zip(ordered["decile"], ranked, churners, strict=True)
    ]


def best(curve: list[Campaign]) -> Campaign:
    """The cutoff with the highest expected net value (the smaller one on a tie)."""
    return max(curve, key=lambda c: (round(c.net, 9), -c.pct))
