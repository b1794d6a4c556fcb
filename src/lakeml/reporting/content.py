"""The report's sections, in the order a reader needs them: who to contact and what it is
worth, the model's facts, what drives churn, the data behind it, and its known limits.

Pure: `ReportFacts` and the config in, `Section`s out. Every number is a `Num` whose key
names its source (see `document`). Who to contact and what drives churn are built here; the
model's facts, the data and the limits in `evidence`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from lakeml.core.config import ReportConfig
from lakeml.reporting import business, charts
from lakeml.reporting.document import Image, Num, Section, Table
from lakeml.reporting.evidence import data_section, f4, limits_section, model_section, share
from lakeml.reporting.facts import ReportFacts
from lakeml.training.evaluate import pct_name


def money(x: float, currency: str) -> str:
    return f"{x:,.0f} {currency}"


def value_text(value: Any) -> str:
    """A reason's raw value as text: numbers to 3 significant digits, the rest as it is."""
    try:
        return f"{float(value):.3g}"
    except (TypeError, ValueError):
        return str(value)


def reason_text(reasons: Any, top: int = 3) -> str:
    if reasons is None or len(reasons) == 0:
        return "-"
    return "; ".join(
        f"{r['feature']} = {value_text(r['value'])} ({r['contribution']:+.3f})"
        for r in list(reasons)[:top]
    )


def manager_section(f: ReportFacts, r: ReportConfig) -> Section:
    s = Section("Who to contact this week, and what it is worth")
    key = f"test_precision_at_{pct_name(r.budget_pct)}"
    precision = f.run_metrics[key]
    plan = business.campaign(f.scored_rows, r.budget_pct, precision, r)
    curve = business.value_curve(f.deciles, f.scored_rows, r)
    top = business.best(curve)
    c = r.currency
    s.para(
        "Contact the ",
        Num("derived:contacts", f"{plan.contacts:,}"),
        f" customers with the highest churn risk: the top {r.budget_pct:g}% of the ",
        Num("scores:rows", f"{f.scored_rows:,}"),
        f" scored on {f.snapshot}. On the test window, {share(precision)} of the top "
        f"{r.budget_pct:g}% churned (precision ",
        Num(f"metric:{key}", f4(precision)),
        "), so the list reaches about ",
        Num("derived:expected_churners", f"{plan.expected_churners:,.1f}"),
        " churners; if ",
        Num("config:save_rate", share(r.save_rate)),
        " of them stay thanks to the contact, about ",
        Num("derived:expected_saved", f"{plan.expected_saved:,.1f}"),
        " customers are kept, worth ",
        Num("derived:value", money(plan.value, c)),
        " for ",
        Num("derived:cost", money(plan.cost, c)),
        " of contact cost: an expected net value of ",
        Num("derived:net", money(plan.net, c)),
        ".",
    )
    s.blocks.append(
        Table(
            ["assumption (report.* in config)", "value"],
            [
                [
                    "budget: share of the scored customers contacted",
                    Num("config:budget_pct", f"{r.budget_pct:g}%"),
                ],
                ["cost per contact", Num("config:cost_per_contact", money(r.cost_per_contact, c))],
                [
                    "value of a retained customer",
                    Num("config:value_per_retained", money(r.value_per_retained, c)),
                ],
                [
                    "save rate: share of contacted churners who stay",
                    Num("config:save_rate", share(r.save_rate)),
                ],
            ],
            caption="Business assumptions",
        )
    )
    s.blocks.append(
        Image("value_curve", charts.value_curve(curve, plan, top, c), "Net value by cutoff")
    )
    s.para(
        f"The expected net value is highest when contacting the top {top.pct:g}% ",
        f"({top.contacts:,} customers): ",
        Num("derived:best_net", money(top.net, c)),
        ". Precision at each cutoff is the test window's cumulative churn rate by decile.",
    )
    s.blocks.append(
        Table(
            ["top %", "contacts", "precision", "churners reached", "net value"],
            [
                [
                    f"{p.pct:g}%",
                    f"{p.contacts:,}",
                    Num(f"curve:{i + 1}:precision", f4(p.precision)),
                    f"{p.expected_churners:,.1f}",
                    money(p.net, c),
                ]
                for i, p in enumerate(curve)
            ],
            caption="Value by cutoff",
        )
    )
    shown = f.top.head(min(plan.contacts, r.contacts_shown))
    s.blocks.append(
        Table(
            ["rank", f.entity_col, "churn probability", "risk decile", "top reasons"],
            [
                [
                    str(i + 1),
                    str(row[f.entity_col]),
                    Num(f"score:{row[f.entity_col]}", f4(row["churn_probability"])),
                    str(row["risk_decile"]),
                    reason_text(row["reasons"], 2),
                ]
                for i, row in enumerate(shown.to_dict("records"))
            ],
            caption=f"The first {len(shown)} of the {plan.contacts:,} to contact",
        )
    )
    s.para(
        f"The whole list: the scores table {f.tables['scores']['path']} (Delta version ",
        Num("table:scores:version", str(f.scores_version)),
        f"), rows of snapshot {f.snapshot}, model {f.ref.name} version {f.ref.version}, "
        "ordered by churn_probability.",
    )
    return s


def drivers_section(f: ReportFacts, r: ReportConfig) -> Section:
    s = Section("What drives churn")
    if f.drivers is None or f.drivers.empty:
        s.para("This model version logged no feature weights or contributions.")
    else:
        kind = str(f.drivers["kind"].iloc[0]) if "kind" in f.drivers else "weight"
        top = f.drivers.head(10)
        s.para(f"The features that move this model's scores most ({kind} on the test window):")
        s.blocks.append(Image("drivers", charts.drivers(f.drivers, 10), "Top drivers"))
        s.blocks.append(
            Table(
                ["feature", kind],
                [
                    [row["feature"], Num(f"driver:{row['feature']}", f4(row["value"]))]
                    for row in top.to_dict("records")
                ],
                caption="Top drivers",
            )
        )
    examples = f.top.head(r.example_customers)
    explained = [
        row
        for row in examples.to_dict("records")
        if row["reasons"] is not None and len(row["reasons"]) > 0
    ]
    if explained:
        s.para("Three of the customers at the top of the list, and why the model ranks them there:")
        s.blocks.append(
            Table(
                [
                    f.entity_col,
                    "churn probability",
                    "reasons (feature = value, contribution to the log-odds)",
                ],
                [
                    [
                        str(row[f.entity_col]),
                        Num(f"score:{row[f.entity_col]}", f4(row["churn_probability"])),
                        reason_text(row["reasons"], 3),
                    ]
                    for row in explained
                ],
                caption="Example customers",
            )
        )
    else:
        s.para(
            "This model type gives no per-customer reasons (xgboost and logistic regression do)."
        )
    return s


def sections(f: ReportFacts, r: ReportConfig) -> list[Section]:
    return [
        manager_section(f, r),
        model_section(f, r),
        drivers_section(f, r),
        data_section(f),
        limits_section(f),
    ]


def title(f: ReportFacts) -> tuple[str, str]:
    return (
        f"Churn report: {f.ref.name} v{f.ref.version}, snapshot {f.snapshot}",
        f"{f.scored_rows:,} customers scored by {f.model_type}; lakeml "
        f"{f.versions.get('lakeml', '?')}; generated {f.generated_at:%Y-%m-%d %H:%M} UTC",
    )


__all__ = ["pd", "sections", "title"]
