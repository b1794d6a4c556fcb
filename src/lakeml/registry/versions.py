"""The model registry: versions behind aliases, the champion gate, listing and promotion.

Every trained model becomes a new version with alias `challenger`. It takes `champion`
only if it passes the absolute floors (gate.min_roc_auc, gate.min_pr_auc) and beats the
current champion's `gate.metric` by at least `gate.margin`, both scored on THIS run's
test window: old metrics were measured on other data and are not comparable.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lakeml.core.config import Config, GateConfig
from lakeml.core.errors import LakemlError
from lakeml.core.report import Report
from lakeml.tracking.store import connect
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


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version behind an alias, or None if the model or the alias does not exist."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def register(model_uri: str, name: str, tags: dict[str, str]) -> ModelVersion:
    """A new version of `name` (created if new) from a logged model, with its tags."""
    return mlflow.register_model(model_uri, name, await_registration_for=0, tags=tags)


def version_row(mv: ModelVersion, aliases: list[str]) -> dict[str, Any]:
    """One registry version as a row of `lakeml models`."""
    tags = mv.tags or {}
    created = datetime.datetime.fromtimestamp(mv.creation_timestamp / 1000, datetime.timezone.utc)
    return {
        "name": mv.name,
        "version": str(mv.version),
        "aliases": sorted(aliases),
        "model_type": tags.get("model_type", ""),
        "gate_decision": tags.get("gate_decision", ""),
        "test_roc_auc": tags.get("test_roc_auc", ""),
        "test_pr_auc": tags.get("test_pr_auc", ""),
        "threshold": tags.get("threshold", ""),
        "test_snapshots": tags.get("test_snapshots", ""),
        "created": created.strftime("%Y-%m-%d %H:%M:%S"),
        "run_id": mv.run_id,
    }


def _versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    try:
        found = client.search_model_versions(f"name='{name}'")
    except MlflowException:
        return []
    return sorted(found, key=lambda mv: int(mv.version), reverse=True)


def _aliases(client: MlflowClient, name: str) -> dict[str, list[str]]:
    """Version -> its aliases (search results do not carry them; the model does)."""
    try:
        by_alias = client.get_registered_model(name).aliases or {}
    except MlflowException:
        return {}
    out: dict[str, list[str]] = {}
    for alias, version in by_alias.items():
        out.setdefault(str(version), []).append(alias)
    return out


def _fmt(value: str) -> str:
    try:
        return f"{float(value):.4f}"
    except ValueError:
        return value or "-"


def list_models(cfg: Config, report: Report) -> None:
    """Print the versions of the churn model and its baseline, newest first."""
    client = connect(cfg)
    name = cfg.mlflow.registered_model
    rows = []
    for n in (name, f"{name}-baseline"):
        aliases = _aliases(client, n)
        rows += [version_row(mv, aliases.get(str(mv.version), [])) for mv in _versions(client, n)]
    if not rows:
        report.progress("models", f"no versions of {name!r} registered yet; run `lakeml train`")
    else:
        header = ("name", "version", "aliases", "type", "gate", "roc_auc", "pr_auc", "created")
        lines = [
            (
                r["name"],
                r["version"],
                ",".join(r["aliases"]) or "-",
                r["model_type"] or "-",
                r["gate_decision"] or "-",
                _fmt(r["test_roc_auc"]),
                _fmt(r["test_pr_auc"]),
                r["created"],
            )
            for r in rows
        ]
        widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
        for line in (header, *lines):
            cells = (str(x).ljust(w) for x, w in zip(line, widths, strict=True))
            print("  ".join(cells).rstrip(), flush=True)
    report.add(registered_model=name, tracking_uri=cfg.tracking_uri, models=rows)


def promote(cfg: Config, report: Report, version: str, alias: str = CHAMPION) -> None:
    """Point `alias` at `version` by hand (e.g. roll back the champion)."""
    client = connect(cfg)
    name = cfg.mlflow.registered_model
    version = str(version).strip()
    if not alias or not alias.replace("_", "").replace("-", "").isalnum():
        raise LakemlError(f"alias {alias!r} is not valid: use letters, digits, - and _")
    existing = [str(mv.version) for mv in _versions(client, name)]
    if version not in existing:
        listed = ", ".join(existing) if existing else "none"
        raise LakemlError(
            f"version {version!r} of model {name!r} does not exist (versions: {listed}); "
            "see `lakeml models`"
        )
    previous = alias_version(client, name, alias)
    client.set_registered_model_alias(name, alias, version)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    client.set_model_version_tag(name, version, f"promoted_by_hand_{alias}", now)
    before = str(previous.version) if previous else None
    report.progress("promote", f"{name}@{alias}: v{before or '-'} -> v{version}")
    report.add(
        promoted={
            "model": name,
            "alias": alias,
            "version": version,
            "previous_version": before,
            "model_uri": f"models:/{name}@{alias}",
        }
    )
