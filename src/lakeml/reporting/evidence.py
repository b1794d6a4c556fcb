"""The report's evidence: the model's facts, the data behind it and its known limits, with the
number formats every section shares.

Pure: `ReportFacts` and the config in, `Section`s out. Every number is a `Num` whose key
names its source (see `document`); `content` puts these sections in the report's order.
"""

from __future__ import annotations

import math
from typing import Any

from lakeml.core.config import ReportConfig
from lakeml.reporting import charts
from lakeml.reporting.document import Image, Num, Section, Table
from lakeml.reporting.facts import ReportFacts
from lakeml.tracking import tags as tag


def f4(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def share(x: float) -> str:
    return f"{100 * x:.1f}%"


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
