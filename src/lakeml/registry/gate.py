"""The champion gate: a new version takes `champion` only if it earns it on this test window.

Every trained model becomes a new version with alias `challenger`. It takes `champion`
only if it passes the absolute floors (gate.min_roc_auc, gate.min_pr_auc) and beats the
current champion's `gate.metric` by at least `gate.margin`, both scored on THIS run's
test window: old metrics were measured on other data and are not comparable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lakeml.core.config import GateConfig
from lakeml.training.evaluate import METRIC_KEYS

CHAMPION, CHALLENGER = "champion", "challenger"
# Small float noise must not turn "equal" into "better".
EPSILON = 1e-9


@dataclass(frozen=True)
class GateResult:
    promoted: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def decision(self) -> str:
        return "promoted" if self.promoted else "rejected"


@dataclass(frozen=True)
class GateOutcome:
    """What the gate did: the new version, the decision and the champion before and after."""

    decision: str
    reasons: list[str]
    version: int
    previous_champion: int | None
    previous_champion_test: dict[str, float] | None
    champion_version: int | None
    baseline_version: int | None = None


def gate_decision(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    gate: GateConfig,
    champion_version: str | None = None,
    champion_error: str | None = None,
) -> GateResult:
    """Decide whether the challenger replaces the champion; say why in plain words.

    `champion` holds the champion's metrics on the same test window (None: there is no
    champion, or it could not score this window, as `champion_error` says).
    """
    reasons: list[str] = []
    passes = True
    for key, floor, name in (
        ("roc_auc", gate.min_roc_auc, "min_roc_auc"),
        ("pr_auc", gate.min_pr_auc, "min_pr_auc"),
    ):
        value = challenger[key]
        if value < floor:
            passes = False
            reasons.append(f"test {key} {value:.4f} is below gate.{name} {floor}")
        else:
            reasons.append(f"test {key} {value:.4f} >= gate.{name} {floor}")
    key = METRIC_KEYS[gate.metric]
    if champion is None:
        beats = True
        if champion_error:
            reasons.append(f"champion v{champion_version} not comparable: {champion_error}")
        else:
            reasons.append("no champion yet")
    else:
        diff = challenger[key] - champion[key]
        beats = diff > EPSILON and diff >= gate.margin - EPSILON
        verdict = "beats it by at least" if beats else "does not beat it by"
        reasons.append(
            f"{gate.metric} {challenger[key]:.4f} vs champion v{champion_version} "
            f"{champion[key]:.4f} on this test window ({diff:+.4f}): {verdict} "
            f"gate.margin {gate.margin}"
        )
    return GateResult(passes and beats, reasons)


def as_int(version: Any) -> int | None:
    """MLflow hands versions back as int or str depending on the call: summaries use int."""
    return None if version is None else int(version)
