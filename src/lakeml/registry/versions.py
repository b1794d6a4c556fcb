"""Registered versions behind aliases: look up, register, list and promote by hand."""

from __future__ import annotations

import contextlib
import datetime
import io
from dataclasses import dataclass

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lakeml.core.errors import LakemlError
from lakeml.tracking import tags


@dataclass(frozen=True)
class VersionRow:
    """One registry version as a row of `lakeml models`."""

    name: str
    version: str
    aliases: list[str]
    model_type: str
    gate_decision: str
    test_roc_auc: str
    test_pr_auc: str
    threshold: str
    test_snapshots: str
    created: str
    run_id: str


@dataclass(frozen=True)
class Promotion:
    """An alias moved by hand."""

    model: str
    alias: str
    version: str
    previous_version: str | None

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model}@{self.alias}"


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version behind an alias, or None if the model or the alias does not exist."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def register(model_uri: str, name: str, version_tags: dict[str, str]) -> ModelVersion:
    """A new version of `name` (created if new) from a logged model, with its tags."""
    # register_model prints "Successfully registered ..." to stderr itself (not through a
    # logger); the pipeline reports the version, so that line is noise. Errors still raise.
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        return mlflow.register_model(model_uri, name, await_registration_for=0, tags=version_tags)


def version_row(mv: ModelVersion, aliases: list[str]) -> VersionRow:
    t = mv.tags or {}
    created = datetime.datetime.fromtimestamp(mv.creation_timestamp / 1000, datetime.timezone.utc)
    return VersionRow(
        name=mv.name,
        version=str(mv.version),
        aliases=sorted(aliases),
        model_type=t.get(tags.MODEL_TYPE, ""),
        gate_decision=t.get(tags.GATE_DECISION, ""),
        test_roc_auc=t.get(tags.TEST_ROC_AUC, ""),
        test_pr_auc=t.get(tags.TEST_PR_AUC, ""),
        threshold=t.get(tags.THRESHOLD, ""),
        test_snapshots=t.get(tags.TEST_SNAPSHOTS, ""),
        created=created.strftime("%Y-%m-%d %H:%M:%S"),
        run_id=mv.run_id,
    )


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


def list_versions(client: MlflowClient, names: list[str]) -> list[VersionRow]:
    """Every version of the named models, newest first within each."""
    rows = []
    for n in names:
        aliases = _aliases(client, n)
        rows += [version_row(mv, aliases.get(str(mv.version), [])) for mv in _versions(client, n)]
    return rows


def promote(client: MlflowClient, name: str, version: str, alias: str) -> Promotion:
    """Point `alias` at `version` by hand (e.g. roll back the champion)."""
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
    client.set_model_version_tag(name, version, tags.promoted_by_hand(alias), now)
    return Promotion(name, alias, version, str(previous.version) if previous else None)
