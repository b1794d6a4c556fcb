"""What the service answers from, kept current in the background.

A refresher thread checks, every `serve.refresh_seconds`, which version the champion alias
names and which Delta version the scores table is at; a change is loaded off the request
path and then swapped in with one assignment, so requests never see a half-loaded state
and none fails during a swap. Each request reads `Service.current` once.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from lakeml.serving import lookup, predictor
from lakeml.tracking import tags

log = logging.getLogger("lakeml.serve")


@dataclass(frozen=True)
class Champion:
    """The version the alias names: its tags, and its native model if it has one."""

    name: str
    version: int
    tags: dict[str, str]
    model: predictor.NativeModel | None
    no_native: str  # why `model` is None

    def describe(self) -> dict[str, Any]:
        t = self.tags

        def number(key: str) -> float | None:
            return float(t[key]) if t.get(key) else None

        return {
            "name": self.name,
            "version": self.version,
            "model_type": t.get(tags.MODEL_TYPE),
            "threshold": tags.threshold(t, 0.5),
            "training_window": {
                "split_method": t.get(tags.SPLIT_METHOD),
                "train_snapshots": t.get(tags.TRAIN_SNAPSHOTS),
                "validation_snapshots": t.get(tags.VALIDATION_SNAPSHOTS),
                "test_snapshots": t.get(tags.TEST_SNAPSHOTS),
            },
            "lineage": {
                "features_path": t.get(tags.FEATURES_PATH),
                "features_version": t.get(tags.FEATURES_VERSION),
                "labels_path": t.get(tags.LABELS_PATH),
                "labels_version": t.get(tags.LABELS_VERSION),
            },
            "test_metrics": {
                "roc_auc": number(tags.TEST_ROC_AUC),
                "pr_auc": number(tags.TEST_PR_AUC),
            },
            "gate": {
                "decision": t.get(tags.GATE_DECISION),
                "reasons": t.get(tags.GATE_REASONS),
            },
            "live_predictions": self.model is not None,
        }


@dataclass(frozen=True)
class Current:
    champion: Champion | None
    scores: lookup.ScoresIndex | None
    problems: tuple[str, ...] = ()


@dataclass
class Service:
    """The state behind the routes; `refresh` is safe to call from one thread at a time."""

    client: Any  # MlflowClient
    model_name: str
    alias: str
    scores_path: str
    entity_col: str
    current: Current = field(default_factory=lambda: Current(None, None))
    _stop: threading.Event = field(default_factory=threading.Event)

    def refresh(self) -> Current:
        """Load what changed (champion version, scores table version); swap it in."""
        now = self.current
        problems = []
        champion = now.champion
        try:
            mv = self.client.get_model_version_by_alias(self.model_name, self.alias)
            if champion is None or champion.version != int(mv.version):
                champion = self._load_champion(int(mv.version), dict(mv.tags))
                log.info("serving %s v%s", self.model_name, champion.version)
        except Exception as exc:  # an unreachable store keeps what is loaded
            problems.append(f"champion: {first_line(exc)}")
        scores = now.scores
        try:
            version = lookup.table_version(self.scores_path)
            if scores is None or scores.version != version:
                scores = lookup.load(self.scores_path, self.entity_col, self.model_name)
        except Exception as exc:
            problems.append(f"scores table: {first_line(exc)}")
        self.current = Current(champion, scores, tuple(problems))
        return self.current

    def _load_champion(self, version: int, version_tags: dict[str, str]) -> Champion:
        try:
            model = predictor.load(self.client, self.model_name, version)
            return Champion(self.model_name, version, version_tags, model, "")
        except predictor.NoNativeModel as exc:
            return Champion(self.model_name, version, version_tags, None, str(exc))

    def run_refresher(self, every: float) -> threading.Thread:
        def loop() -> None:
            while not self._stop.wait(every):
                self.refresh()

        thread = threading.Thread(target=loop, name="lakeml-serve-refresh", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def ready(self, max_age_days: int, now: dt.datetime) -> tuple[bool, list[str]]:
        """Ready: a champion is loaded and its scores were written at most `max_age_days`
        ago. The reasons when not, plus what the last refresh could not reach (a store or
        table error keeps what is loaded, so it alone does not make the service unready)."""
        c = self.current
        unready = []
        if c.champion is None:
            unready.append(f"no {self.alias} version of {self.model_name} loaded")
        if c.scores is None or c.scores.snapshot is None:
            unready.append(f"no scores of {self.model_name} in {self.scores_path}")
        elif (age := c.scores.age_days(now)) is not None and age > max_age_days:
            unready.append(
                f"the latest scores were written {age:.1f} days ago "
                f"(serve.max_score_age_days is {max_age_days})"
            )
        return not unready, [*c.problems, *unready]


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
