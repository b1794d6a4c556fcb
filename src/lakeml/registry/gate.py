"""The champion gate: a new version takes `champion` only if it earns it on this test window.

Every trained model becomes a new version with alias `challenger`. It takes `champion`
only if it passes the floors and beats the current champion's `gate.metric` by at least
`gate.margin`, both scored on THIS run's test window: old metrics were measured on other
data and are not comparable. The floors are relative where they can be (PR AUC as lift over
the window's churn rate, optionally the scikit-learn baseline on the same rows), so one
default fits a 5% churn business and a 30% one alike.
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


def floor_checks(
    challenger: dict[str, float], gate: GateConfig, baseline: dict[str, float] | None = None
) -> list[tuple[bool, str]]:
    """Each floor of the gate as (passed, the reason in plain words)."""
    checks: list[tuple[bool, str]] = []

    def floor(ok: bool, value: str, key: str, limit: float) -> None:
        checks.append((ok, f"{value} {'>=' if ok else 'is below'} gate.{key} {limit}"))

    roc, pr = challenger["roc_auc"], challenger["pr_auc"]
    floor(roc >= gate.min_roc_auc, f"test roc_auc {roc:.4f}", "min_roc_auc", gate.min_roc_auc)
    base_rate = challenger.get("base_rate", 0.0)
    lift = pr / base_rate if base_rate > 0 else 0.0
    floor(
        lift >= gate.min_pr_auc_lift,
        f"test pr_auc {pr:.4f} = {lift:.2f}x the churn rate {base_rate:.4f},",
        "min_pr_auc_lift",
        gate.min_pr_auc_lift,
    )
    if gate.min_pr_auc > 0:
        floor(pr >= gate.min_pr_auc, f"test pr_auc {pr:.4f}", "min_pr_auc", gate.min_pr_auc)
    if gate.baseline_max_shortfall is not None:
        key, limit = METRIC_KEYS[gate.metric], gate.baseline_max_shortfall
        if baseline is None:
            checks.append((False, "gate.baseline_max_shortfall is set but no baseline was trained"))
        else:
            gap = challenger[key] - baseline[key]
            floor(
                gap >= -limit - EPSILON,
                f"{gate.metric} {challenger[key]:.4f} vs the baseline's {baseline[key]:.4f}: "
                f"{gap:+.4f}, shortfall",
                "baseline_max_shortfall",
                limit,
            )
    return checks


def gate_decision(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    gate: GateConfig,
    champion_version: str | None = None,
    champion_error: str | None = None,
    baseline: dict[str, float] | None = None,
) -> GateResult:
    """Decide whether the challenger replaces the champion; say why in plain words.

    `champion` holds the champion's metrics on the same test window (None: there is no
    champion, or it could not score this window, as `champion_error` says); `baseline` the
    scikit-learn baseline's on the same rows, when one was trained.
    """
    checks = floor_checks(challenger, gate, baseline)
    passes = all(ok for ok, _ in checks)
    reasons = [reason for _, reason in checks]
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
