"""Register a training's winner (and baseline) and move the champion alias through the gate.

The current champion is scored on THIS training's test window, so challenger and champion
are compared on the same rows; a champion that cannot score it is not comparable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import mlflow
import mlflow.spark
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pyspark.errors import PySparkException

from lakeml.core.config import TrainConfig
from lakeml.core.errors import first_line
from lakeml.registry import versions
from lakeml.registry.gate import CHALLENGER, CHAMPION, GateOutcome, as_int, gate_decision
from lakeml.scoring import psi
from lakeml.tracking import tags
from lakeml.training import evaluate
from lakeml.training.evaluate import Outcome
from lakeml.training.trainset import TEST, TrainingSet

BASELINE_REASON = "scikit-learn baseline: registered, never gated"


@dataclass(frozen=True)
class Registration:
    """Where the models go: the registered model name and what every version is tagged with."""

    name: str
    train: TrainConfig
    config_digest: str

    @property
    def baseline_name(self) -> str:
        return f"{self.name}-baseline"


def score_champion(
    mv: Any, ts: TrainingSet, t: TrainConfig
) -> tuple[dict[str, float] | None, str | None]:
    """The champion's metrics on THIS test window, or why it could not be scored."""
    uri = f"models:/{mv.name}/{mv.version}"
    try:
        model = mlflow.spark.load_model(uri)
        scores = evaluate.collect_scores(model.transform(ts.window(TEST)), t.label_col)
    except (PySparkException, MlflowException, OSError) as exc:
        return None, f"it could not score this test window ({first_line(exc)})"
    threshold = tags.threshold(dict(mv.tags or {}), 0.5)
    metrics = evaluate.binary_metrics(
        scores[evaluate.LABEL], scores[evaluate.SCORE], threshold, t.top_k_pcts
    )
    return metrics, None


def version_tags(
    reg: Registration, ts: TrainingSet, o: Outcome, decision: str, reasons: str
) -> dict[str, str]:
    """The tags every registered version carries (see `lakeml.tracking.tags`)."""
    t = reg.train
    return tags.version_tags(
        threshold=o.threshold,
        entity_col=t.entity_col,
        snapshot_col=t.snapshot_col,
        label_col=t.label_col,
        lineage=ts.lineage.as_tags(),
        split=ts.split.as_tags(),
        gate_decision=decision,
        gate_reasons=reasons,
        test_roc_auc=o.test["roc_auc"],
        test_pr_auc=o.test["pr_auc"],
        model_type=o.name,
        config_digest=reg.config_digest,
        score_reference=psi.score_distribution(o.p),
    )


MODEL_DESCRIPTION = (
    "lakeml churn model: P(churn within the label horizon) per entity and snapshot. Every "
    "`lakeml train` registers its winner as a new version with alias `challenger`; the gate "
    "moves `champion`, which `lakeml score` and `lakeml serve` use. Version tags hold the "
    "threshold, lineage, split and the gate's decision."
)
BASELINE_DESCRIPTION = (
    "lakeml's scikit-learn baseline: trained beside each `lakeml train` on the same rows, "
    "registered for comparison, never gated or served."
)


def version_note(ts: TrainingSet, o: Outcome, result: Any) -> str:
    test = ts.split.as_tags().get("test_snapshots", "")
    return (
        f"{o.name} fit on {o.fit_window}; test window {test or 'by entity hash'}: ROC AUC "
        f"{o.test['roc_auc']:.4f}, PR AUC {o.test['pr_auc']:.4f}. Gate: {result.decision} "
        f"({'; '.join(result.reasons)})."
    )


def describe(
    client: MlflowClient, name: str, version: str, model_text: str, version_text: str
) -> None:
    """Descriptions the MLflow UI shows: the registered model's (only when it has none, so a
    user's own stays) and the new version's."""
    if not (client.get_registered_model(name).description or "").strip():
        client.update_registered_model(name, description=model_text)
    client.update_model_version(name, version, description=version_text)


def register_and_gate(
    client: MlflowClient,
    reg: Registration,
    ts: TrainingSet,
    winner: Outcome,
    winner_uri: str,
    base: Outcome | None = None,
    base_uri: str | None = None,
    winner_tags: dict[str, str] | None = None,
) -> GateOutcome:
    """Score the current champion on this test window, decide, register, move aliases.

    Runs inside the training's MLflow run: the decision is also tagged there."""
    champion = versions.alias_version(client, reg.name, CHAMPION)
    champion_metrics, champion_error = None, None
    if champion is not None:
        champion_metrics, champion_error = score_champion(champion, ts, reg.train)
    result = gate_decision(
        winner.test,
        champion_metrics,
        reg.train.gate,
        champion.version if champion else None,
        champion_error,
        base.test if base is not None else None,
    )
    reasons = "; ".join(result.reasons)
    contract = version_tags(reg, ts, winner, result.decision, reasons)
    mv = versions.register(winner_uri, reg.name, {**contract, **(winner_tags or {})})
    describe(client, reg.name, mv.version, MODEL_DESCRIPTION, version_note(ts, winner, result))
    client.set_registered_model_alias(reg.name, CHALLENGER, mv.version)
    if result.promoted:
        client.set_registered_model_alias(reg.name, CHAMPION, mv.version)
    previous = as_int(champion.version) if champion else None
    mlflow.set_tags(
        {
            tags.GATE_DECISION: result.decision,
            tags.GATE_REASONS: reasons,
            "model_version": mv.version,
        }
    )
    if champion_metrics:
        mlflow.log_metrics(
            {
                f"champion_test_{k}": float(v)
                for k, v in champion_metrics.items()
                if math.isfinite(v)
            }
        )
    baseline_version = None
    if base is not None and base_uri is not None:
        base_tags = version_tags(reg, ts, base, "baseline", BASELINE_REASON)
        base_mv = versions.register(base_uri, reg.baseline_name, base_tags)
        baseline_version = as_int(base_mv.version)
        describe(
            client,
            reg.baseline_name,
            base_mv.version,
            BASELINE_DESCRIPTION,
            f"scikit-learn baseline of {reg.name} v{mv.version}'s training: test ROC AUC "
            f"{base.test['roc_auc']:.4f}, PR AUC {base.test['pr_auc']:.4f} on the same window.",
        )
    return GateOutcome(
        decision=result.decision,
        reasons=result.reasons,
        version=int(mv.version),
        previous_champion=previous,
        previous_champion_test=champion_metrics,
        champion_version=int(mv.version) if result.promoted else previous,
        baseline_version=baseline_version,
    )
