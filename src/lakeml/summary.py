"""What a run says: the JSON summary sections and the lines for people, built from the
stages' results. Pure functions of those results; the pipeline prints them."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for hints: importing this module must stay cheap
    from lakeml.registry.gate import GateOutcome
    from lakeml.registry.versions import VersionRow
    from lakeml.scoring.drift import DriftResult
    from lakeml.scoring.scorer import ScoreResult
    from lakeml.training.evaluate import Outcome
    from lakeml.training.runlog import LoggedRuns
    from lakeml.training.trainset import TrainingSet

WINDOWS = ("train", "validation", "test")
HEADLINE = ("roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1", "threshold")


def headline(metrics: dict[str, float] | None) -> dict[str, float] | None:
    """The test metrics a summary shows, rounded."""
    if metrics is None:
        return None
    extra = {k: v for k, v in metrics.items() if k.startswith(("precision_at", "lift_at"))}
    return {k: round(float(metrics[k]), 4) for k in HEADLINE} | {
        k: round(float(v), 4) for k, v in extra.items()
    }


def data_lines(ts: TrainingSet) -> list[str]:
    """The training set, window by window."""
    split, lines = ts.split, []
    dates_by_window = dict(zip(WINDOWS, (split.train, split.validation, split.test), strict=True))
    for window, dates in dates_by_window.items():
        c = ts.counts[window]
        if split.method == "random":
            share = {"test": split.test_fraction, "validation": split.validation_fraction}.get(
                window, 1 - split.test_fraction - split.validation_fraction
            )
            where = f"random {share:.0%} of entities of {len(dates)} snapshots"
        else:
            where = f"{len(dates)} snapshots {dates[0]}..{dates[-1]}"
        lines.append(f"{window}: {where}, {c[0] + c[1]} rows, {c[1]} churned")
    lines.append(
        f"{len(ts.spec.numeric)} numeric + {len(ts.spec.categorical)} categorical features; "
        f"features v{ts.lineage.features_version}, labels v{ts.lineage.labels_version}"
    )
    return lines


def tuned_line(o: Outcome, metric: str) -> str:
    return (
        f"{o.name}: {len(o.grid_results)} grid points, best {o.params}, validation {metric} "
        f"{o.validation_metric:.4f}; test ROC AUC {o.test['roc_auc']:.4f}, PR AUC "
        f"{o.test['pr_auc']:.4f} ({o.seconds}s)"
    )


def refit_line(o: Outcome) -> str:
    return (
        f"{o.name} refit on train + validation ({o.fit_rows} rows): test ROC AUC "
        f"{o.test['roc_auc']:.4f}, PR AUC {o.test['pr_auc']:.4f} ({o.seconds}s)"
    )


def baseline_line(o: Outcome) -> str:
    return (
        f"scikit-learn on {o.fit_rows} sampled rows: test ROC AUC {o.test['roc_auc']:.4f}, "
        f"PR AUC {o.test['pr_auc']:.4f} ({o.seconds}s)"
    )


def train_summary(
    cfg: Any,
    ts: TrainingSet,
    outcomes: list[Outcome],
    winner: Outcome,
    base: Outcome | None,
    parent_id: str,
    logged: LoggedRuns,
    gate: GateOutcome,
) -> dict[str, Any]:
    """What the JSON summary line says about a training."""
    name = cfg.mlflow.registered_model
    champion_version = gate.champion_version
    if champion_version == gate.version:
        champion_test = headline(winner.test)
    else:
        champion_test = headline(gate.previous_champion_test)
    out: dict[str, Any] = {
        "tracking_uri": cfg.tracking_uri,
        "experiment": cfg.mlflow.experiment,
        "parent_run_id": parent_id,
        "run_ids": logged.runs,
        "rows": {w: sum(ts.counts[w].values()) for w in WINDOWS},
        "snapshots": ts.split.as_tags(),
        "lineage": ts.lineage.as_tags(),
        "models": {
            o.name: {
                "best_params": o.params,
                f"validation_{cfg.train.primary_metric}": round(o.validation_metric or 0.0, 4),
                "test_fit_on_train": headline(o.test),
                "seconds": o.seconds,
            }
            for o in outcomes
        },
        "winner": winner.name,
        "challenger": {
            "version": gate.version,
            "model_uri": f"models:/{name}/{gate.version}",
            "model_type": winner.name,
            "fit_window": winner.fit_window,
            "test": headline(winner.test),
        },
        "champion": {
            "model_uri": f"models:/{name}@champion" if champion_version else None,
            "version": champion_version,
            "test": champion_test,
        },
        "gate": {
            "decision": gate.decision,
            "reasons": gate.reasons,
            "previous_champion": gate.previous_champion,
        },
        "logging_seconds": {"models": logged.model_seconds, "other": logged.other_seconds},
    }
    if base is not None:
        out["baseline"] = {
            "version": gate.baseline_version,
            "model_uri": f"models:/{name}-baseline/{gate.baseline_version}",
            "test": headline(base.test),
        }
    return out


def train_lines(
    registered_model: str, top_k_pcts: list[float], outcomes: list[Outcome], s: dict[str, Any]
) -> list[str]:
    """A few lines for people about a training, for the closing summary."""
    rows = s["rows"]
    lines = [
        f"training rows train/validation/test: {rows['train']}/{rows['validation']}/"
        f"{rows['test']} (test snapshots {s['snapshots']['test_snapshots']})",
    ]
    first_k = f"{top_k_pcts[0]:g}pct" if top_k_pcts else "-"
    for o in outcomes:
        lifts = [v for k, v in o.test.items() if k.startswith("lift_at_")]
        lift = f"{lifts[0]:.2f}" if lifts else "-"
        lines.append(
            f"{o.name} (fit on {o.fit_window}): test ROC AUC {o.test['roc_auc']:.3f}, "
            f"PR AUC {o.test['pr_auc']:.3f}, lift@{first_k} {lift}"
        )
    gate, champ = s["gate"], s["champion"]
    lines.append(
        f"winner {s['winner']} -> {registered_model} v{s['challenger']['version']} "
        f"(challenger): {gate['decision']}"
    )
    lines.append(f"champion: {champ['model_uri'] or 'none'} = v{champ['version'] or '-'}")
    return lines


def score_psi_line(d: DriftResult) -> str:
    """The drift headline: how far the score distribution moved from the test window's."""
    if d.score_psi is None:
        return f"score PSI not computed: {d.score_psi_skipped}"
    return f"score PSI {d.score_psi:.4f} against the model's test-window scores"


def drift_summary(d: DriftResult) -> dict[str, Any]:
    headline = {"score_psi": d.score_psi, "score_psi_skipped": d.score_psi_skipped}
    if d.skipped:
        return {
            **headline,
            "skipped": d.skipped,
            "warnings": [],
            "table": None,
            "drifted_features": [],
        }
    return {
        **headline,
        "reference": d.reference,
        "excluded_features": d.excluded,
        "table": {"path": d.table_path, "version": d.table_version},
        "features_checked": d.features_checked,
        "drifted_features": d.drifted_features,
        "warnings": d.warnings,
        "mlflow_run_id": d.mlflow_run_id,
    }


def score_summary(r: ScoreResult, d: DriftResult | None = None) -> dict[str, Any]:
    """What the JSON summary line says about a scoring and its drift check (no "drift" key
    before the check has run: a failed check's summary still shows the scores written)."""
    out = {
        "model_uri": r.model_uri,
        "model_name": r.ref.name,
        "model_version": r.ref.version,
        "run_id": r.ref.run_id,
        "scorer": r.scorer,
        "snapshot_date": str(r.data.snapshot),
        "input": r.data.source,
        "rows_scored": r.data.count,
        "threshold": r.threshold,
        "scores_table": {"path": r.scores_path, "version": r.scores_version},
    }
    return out if d is None else {**out, "drift": drift_summary(d)}


def drift_progress(d: DriftResult) -> list[str]:
    """The drift stage's progress lines: why it was skipped, a warning per drifted feature,
    or that none drifted."""
    head = [score_psi_line(d)]
    if d.skipped:
        return [*head, f"skipped: {d.skipped}"]
    left_out = f" ({len(d.excluded)} left out by monitor.exclude)" if d.excluded else ""
    checked = f"{d.features_checked} features checked against the {d.reference}{left_out}"
    if d.warnings:
        return [*head, checked, *[f"WARNING {warning}" for warning in d.warnings]]
    return [*head, f"{checked}, none drifted"]


def drift_line(d: DriftResult, drift_path: str) -> str:
    """One line about drift: how many features drifted and where the details are."""
    if d.skipped:
        return f"drift not computed: {d.skipped}"
    if d.warnings:
        return (
            f"drift: {len(d.warnings)} of {d.features_checked} features over the thresholds "
            f"(listed above; PSI and null rates per feature in {drift_path})"
        )
    return f"{d.features_checked} features checked, none drifted"


def score_lines(s: dict[str, Any], d: DriftResult, drift_path: str) -> list[str]:
    return [
        f"scored {s['rows_scored']} rows of snapshot {s['snapshot_date']} with "
        f"{s['model_name']} v{s['model_version']} -> {s['scores_table']['path']} "
        f"(Delta version {s['scores_table']['version']})",
        score_psi_line(d),
        drift_line(d, drift_path),
    ]


def models_table(rows: list[VersionRow]) -> list[str]:
    """`lakeml models` as aligned text columns."""
    header = ("name", "version", "aliases", "type", "gate", "roc_auc", "pr_auc", "created")
    lines = [
        (
            r.name,
            r.version,
            ",".join(r.aliases) or "-",
            r.model_type or "-",
            r.gate_decision or "-",
            _fmt(r.test_roc_auc),
            _fmt(r.test_pr_auc),
            r.created,
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
    return [
        "  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
        for line in (header, *lines)
    ]


def _fmt(value: str) -> str:
    try:
        return f"{float(value):.4f}"
    except ValueError:
        return value or "-"


def rows_as_dicts(rows: list[Any]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def realized_row(r: dict[str, Any]) -> dict[str, Any]:
    """A model_performance row for the JSON summary (dates as text, floats rounded)."""
    return {
        k: (str(v) if k == "snapshot_date" else round(v, 4) if isinstance(v, float) else v)
        for k, v in r.items()
    }


def realized_line(r: dict[str, Any]) -> str:
    """One realized-performance row for people."""

    def fmt(key: str) -> str:
        return "n/a" if r.get(key) is None else f"{r[key]:.4f}"

    return (
        f"{r['model_name']} v{r['model_version']} on {r['snapshot_date']}: {r['rows']} rows, "
        f"{r['positives']} churned; ROC AUC {fmt('roc_auc')}, PR AUC {fmt('pr_auc')} "
        f"({'n/a' if r.get('pr_auc_lift') is None else format(r['pr_auc_lift'], '.2f')}x the "
        f"churn rate), precision in the top {r['top_k_pct']:g}% "
        f"{fmt('precision_at_top_k')}, capture at the threshold {fmt('capture_at_threshold')}, "
        f"calibration error {fmt('calibration_error')}"
    )
