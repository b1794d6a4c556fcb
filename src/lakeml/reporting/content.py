"""The report's sections, in the order a reader needs them: who to contact and what it is
worth, the model's facts, what drives churn, the data behind it, and its known limits.

Pure: `ReportFacts` and the config in, `Section`s out. Every number is a `Num` whose key
names its source (see `document`).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from lakeml.core.config import ReportConfig
from lakeml.reporting import business, charts
from lakeml.reporting.document import Image, Num, Section, Table
from lakeml.reporting.facts import ReportFacts
from lakeml.tracking import tags as tag
from lakeml.training.evaluate import pct_name


def f4(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def share(x: float) -> str:
    return f"{100 * x:.1f}%"


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


def _metrics_row(name: str, source: str, m: dict[str, float], prefix: str) -> list[Any]:
    return [
        name,
        *[
            Num(f"{source}:{prefix}{k}", f4(m.get(f"{prefix}{k}")))
            for k in ("roc_auc", "pr_auc", "precision", "recall")
        ],
    ]


def model_section(f: ReportFacts, r: ReportConfig) -> Section:
    s = Section("The model")
    t = f.ref.tags
    status = [a for a, v in f.aliases.items() if v == f.ref.version]
    s.para(
        f"{f.ref.name} version {f.ref.version} ({f.model_type}; aliases: "
        f"{', '.join(sorted(status)) or 'none'}). It labels a customer a churner at a "
        "probability of at least ",
        Num("metric:threshold", f4(f.run_metrics.get("threshold"))),
        "; on the test window that flags churners with precision ",
        Num("metric:test_precision", f4(f.run_metrics.get("test_precision"))),
        " and recall ",
        Num("metric:test_recall", f4(f.run_metrics.get("test_recall"))),
        ".",
    )
    rows = [_metrics_row(f"this version (v{f.ref.version})", "metric", f.run_metrics, "test_")]
    if "champion_test_roc_auc" in f.parent_metrics:
        rows.append(
            _metrics_row("the champion before it", "parent", f.parent_metrics, "champion_test_")
        )
    if "baseline_test_roc_auc" in f.parent_metrics:
        rows.append(
            _metrics_row("scikit-learn baseline", "parent", f.parent_metrics, "baseline_test_")
        )
    if f.challenger:
        ch = f.challenger
        rows.append(
            [
                f"challenger v{ch['version']} ({ch.get(tag.MODEL_TYPE, '?')}, its own test window)",
                Num("challenger:test_roc_auc", f4(float(ch.get(tag.TEST_ROC_AUC, "nan")))),
                Num("challenger:test_pr_auc", f4(float(ch.get(tag.TEST_PR_AUC, "nan")))),
                "n/a",
                "n/a",
            ]
        )
    s.blocks.append(
        Table(
            ["model", "ROC AUC", "PR AUC", "precision at threshold", "recall at threshold"],
            rows,
            caption="On the same test window (the challenger row: on its own training's window)",
        )
    )
    s.para(
        f"Gate decision: {t.get(tag.GATE_DECISION, 'unknown')}. Reasons: "
        f"{t.get(tag.GATE_REASONS, 'none recorded')}."
    )
    d = f.deciles
    s.blocks.append(Image("lift", charts.lift_by_decile(d), "Lift by decile"))
    s.blocks.append(
        Table(
            ["decile", "rows", "churners", "churn rate", "lift", "cumulative capture"],
            [
                [
                    str(int(row["decile"])),
                    Num(f"decile:{int(row['decile'])}:rows", str(int(row["rows"]))),
                    Num(f"decile:{int(row['decile'])}:churners", str(int(row["churners"]))),
                    Num(f"decile:{int(row['decile'])}:churn_rate", f4(row["churn_rate"])),
                    Num(f"decile:{int(row['decile'])}:lift", f4(row["lift"])),
                    Num(
                        f"decile:{int(row['decile'])}:cumulative_capture",
                        f4(row["cumulative_capture"]),
                    ),
                ]
                for row in d.to_dict("records")
            ],
            caption="Gains and lift by decile of the test window (1 = highest scores)",
        )
    )
    cal = f.calibration
    s.blocks.append(Image("calibration", charts.calibration(cal), "Calibration"))
    s.blocks.append(
        Table(
            ["score bin", "rows", "mean predicted", "observed churn rate"],
            [
                [
                    f"{row['lower']:.1f}-{row['upper']:.1f}",
                    str(int(row["rows"])),
                    Num(f"calibration:{int(row['bin'])}:mean_predicted", f4(row["mean_predicted"])),
                    Num(f"calibration:{int(row['bin'])}:observed_rate", f4(row["observed_rate"])),
                ]
                for row in cal.to_dict("records")
            ],
            caption="Calibration on the test window",
        )
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


def data_section(f: ReportFacts) -> Section:
    s = Section("The data behind it")
    t = f.ref.tags
    s.blocks.append(
        Table(
            ["window", "snapshots"],
            [
                ["train", t.get(tag.TRAIN_SNAPSHOTS, "-") or "-"],
                ["validation", t.get(tag.VALIDATION_SNAPSHOTS, "-") or "-"],
                ["test", t.get(tag.TEST_SNAPSHOTS, "-") or "-"],
                ["scored", str(f.snapshot)],
            ],
            caption="Windows",
        )
    )
    s.para(
        "The test window held ",
        Num("metric:test_rows", f"{int(f.run_metrics.get('test_rows', 0)):,}"),
        " rows, ",
        Num("metric:test_positives", f"{int(f.run_metrics.get('test_positives', 0)):,}"),
        " of them churners (churn rate ",
        Num("metric:test_base_rate", f4(f.run_metrics.get("test_base_rate"))),
        ").",
    )
    s.blocks.append(
        Table(
            ["table", "path", "Delta version", "rows"],
            [
                [
                    n,
                    v["path"],
                    Num(f"table:{n}:version", str(v["version"])),
                    Num(f"table:{n}:rows", f"{v['rows']:,}"),
                ]
                for n, v in f.tables.items()
            ],
            caption="Tables now",
        )
    )
    if f.quarantine_by_rule:
        total = sum(f.quarantine_by_rule.values())
        silver = f.tables.get("silver", {}).get("rows", 0)
        s.blocks.append(
            Table(
                ["rule", "rows quarantined", "share of all rows"],
                [
                    [rule, Num(f"quarantine:{rule}", f"{n:,}"), share(n / (silver + total))]
                    for rule, n in sorted(f.quarantine_by_rule.items(), key=lambda kv: -kv[1])
                ],
                caption=f"Quarantine by rule ({total:,} rows)",
            )
        )
    s.para(
        f"Lineage: trained on {t.get(tag.FEATURES_PATH, '?')} at Delta version ",
        Num("tag:features_version", t.get(tag.FEATURES_VERSION, "?")),
        f" and {t.get(tag.LABELS_PATH, '?')} at version ",
        Num("tag:labels_version", t.get(tag.LABELS_VERSION, "?")),
        f"; MLflow run {f.ref.run_id}.",
    )
    if f.score_psi is not None:
        s.para(
            "Drift headline: the scores' PSI against the test window's scores is ",
            Num("mlflow:score_psi", f4(f.score_psi)),
            " (under 0.1: stable; over 0.2: the population has moved).",
        )
    if f.drift is not None and not f.drift.empty:
        d = f.drift.sort_values("psi", ascending=False, na_position="last")
        s.para(f"{int(d['drifted'].sum())} of {len(d)} checked features drifted on {f.snapshot}.")
        s.blocks.append(
            Table(
                ["feature", "PSI", "null-rate change", "drifted"],
                [
                    [
                        row["feature"],
                        Num(f"drift:{row['feature']}:psi", f4(row["psi"])),
                        f4(row["null_rate_change"]),
                        "yes" if row["drifted"] else "no",
                    ]
                    for row in d.head(8).to_dict("records")
                ],
                caption="Features that moved most",
            )
        )
    if f.realized is not None and not f.realized.empty:
        rz = f.realized.sort_values(["snapshot_date", "model_version"])
        s.blocks.append(
            Table(
                ["snapshot", "version", "rows", "churners", "ROC AUC", "PR AUC", "lift", "capture"],
                [
                    [
                        str(row["snapshot_date"]),
                        f"v{row['model_version']}",
                        str(row["rows"]),
                        str(row["positives"]),
                        *[
                            Num(
                                f"realized:{row['snapshot_date']}:{row['model_version']}:{m}",
                                f4(row[m]),
                            )
                            for m in ("roc_auc", "pr_auc", "pr_auc_lift", "capture_at_threshold")
                        ],
                    ]
                    for row in rz.to_dict("records")
                ],
                caption="Realized performance once labels matured",
            )
        )
    else:
        s.para(
            "No scored snapshot has matured yet: realized performance follows once labels exist."
        )
    return s


def limits_section(f: ReportFacts) -> Section:
    s = Section("Known limits")
    notes = []
    positives = int(f.run_metrics.get("test_positives", 0))
    if positives < 50:
        notes.append(
            f"The test window holds {positives} churners: its metrics move by several points from "
            "one window to the next."
        )
    cal = f.calibration
    if not cal.empty:
        weighted = (cal["rows"] * (cal["mean_predicted"] - cal["observed_rate"])).sum() / cal[
            "rows"
        ].sum()
        if weighted > 0.05:
            notes.append(
                f"Probabilities over-state churn by {weighted:.2f} on average (class weights "
                "balance the classes in training): rank by them, do not read them as rates."
            )
    if f.realized is None or f.realized.empty:
        notes.append("No realized performance yet: the scored snapshots' labels have not matured.")
    notes.append(
        "Net values rest on the assumptions above and on the test window's precision holding "
        "for this week's customers."
    )
    for n in notes:
        s.para(n)
    s.blocks.append(
        Table(
            ["library", "version"],
            [[k, v] for k, v in f.versions.items()],
            caption=f"Generated {f.generated_at:%Y-%m-%d %H:%M} UTC with",
        )
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
