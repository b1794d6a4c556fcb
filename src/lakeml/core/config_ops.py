"""The config sections of a trained model's life: scoring, drift and SLA monitoring, the
retraining policy, the stakeholder report and the service.

Keys `score`, `monitor`, `report`, `retrain` and `serve` of `conf/<env>.yaml`;
`lakeml.core.config` validates them with the rest of the file.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lakeml.core.config_load import Fraction, NonEmpty, Percent, Text
from lakeml.core.config_load import Section as _Section


class ScoreConfig(_Section):
    """Empty model_uri: models:/<registered_model>@champion."""

    KEY = "score"
    model_uri: Text = ""
    arrow_batch_size: int = Field(10000, ge=1)
    risk_bands: int = Field(10, ge=1)
    # Per scored entity, this many features that raise its risk most (0: none).
    reasons_top_k: int = Field(3, ge=0, le=50)


class MonitorConfig(_Section):
    """Drift compares a scored snapshot with a reference of the same kind: by default the
    model's latest training snapshot (`train_window`: all its training snapshots). Features
    matching an `exclude` glob (e.g. lifetime totals, which grow with account age by
    construction) are not checked. The headline is the PSI of the scores themselves against
    the model's test-window scores."""

    KEY = "monitor"
    reference: Literal["latest_train_snapshot", "train_window"] = Field(
        "latest_train_snapshot", title="drift reference"
    )
    exclude: list[Text] = Field(default_factory=list)
    psi_bins: int = Field(10, ge=2)
    psi_threshold: float = Field(0.2, ge=0)
    null_rate_threshold: Fraction = 0.1
    # Realized performance: precision and lift among the top_k_pct% highest scores, and the
    # expected calibration error over calibration_bins equal-width score bins.
    top_k_pct: Percent = 10.0
    calibration_bins: int = Field(10, ge=2)
    # `lakeml monitor`'s SLA checks. Scores are fresh when the champion has scored a snapshot
    # at most max_score_lag_days before the latest feature snapshot.
    max_score_lag_days: int = Field(0, ge=0)
    min_realized_roc_auc: Fraction = 0.65
    min_realized_pr_auc_lift: float = Field(1.5, ge=0)
    max_drift_share: Fraction = 0.1
    max_quarantine_share: Fraction = 0.05
    # The environment variable holding the alert webhook URL (Slack-compatible JSON body);
    # unset or empty: no alert is sent. The URL itself never sits in config or logs.
    webhook_env: Text = "LAKEML_WEBHOOK_URL"
    webhook_timeout_seconds: float = Field(10.0, gt=0)


class ReportConfig(_Section):
    """`lakeml report`: the business assumptions a manager's section rests on, stated in the
    report. Who to contact: the top `budget_pct` % of the scored snapshot (one of
    train.top_k_pcts, whose test-window precision training measured); each contact costs
    `cost_per_contact`; a churner contacted stays with probability `save_rate`, worth
    `value_per_retained`."""

    KEY = "report"
    budget_pct: Percent = 10.0
    cost_per_contact: float = Field(5.0, ge=0)
    value_per_retained: float = Field(120.0, ge=0)
    save_rate: Fraction = 0.25
    currency: NonEmpty = "USD"
    example_customers: int = Field(3, ge=0, le=20)
    contacts_shown: int = Field(20, ge=0, le=1000)


class RetrainConfig(_Section):
    """`lakeml retrain`: train when the champion is older than max_champion_age_days, its
    realized performance fell below monitor's floors, or its drift share exceeded
    monitor.max_drift_share; otherwise do nothing and say why. The gate still decides."""

    KEY = "retrain"
    max_champion_age_days: int = Field(28, ge=0)


class ServeConfig(_Section):
    """`lakeml serve`: where it listens, who may call it, how fresh its scores must be.

    `auth_env` names an environment variable holding a bearer token the /v1 routes then
    require (the token itself never sits in config); empty: no token."""

    KEY = "serve"
    host: NonEmpty = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    auth_env: Text = ""
    max_body_bytes: int = Field(1_000_000, ge=1024)
    max_rows: int = Field(1000, ge=1)
    max_score_age_days: int = Field(8, ge=0)
    refresh_seconds: float = Field(5.0, gt=0)
