"""SLA checks and the retraining policy on facts written out by hand."""

from __future__ import annotations

from datetime import date

from lakeml.core.config import MonitorConfig, RetrainConfig
from lakeml.monitoring.checks import Facts, alert_body, retrain_decision, sla_checks

HEALTHY = Facts(
    model_name="churn",
    champion_version=3,
    champion_age_days=5.0,
    latest_feature_snapshot=date(2018, 11, 26),
    latest_scored_snapshot=date(2018, 11, 26),
    realized={
        "snapshot_date": date(2018, 11, 12),
        "rows": 400,
        "positives": 20,
        "roc_auc": 0.74,
        "pr_auc": 0.16,
        "pr_auc_lift": 3.2,
    },
    drifted_features=2,
    features_checked=40,
    drift_snapshot=date(2018, 11, 26),
    quarantined=30,
    silver_rows=9970,
)


def verdicts(facts: Facts, **monitor) -> dict[str, bool]:
    return {c.name: c.ok for c in sla_checks(facts, MonitorConfig(**monitor))}


def test_a_healthy_lake_passes_every_check():
    assert verdicts(HEALTHY) == {
        "champion": True,
        "scores_fresh": True,
        "realized_performance": True,
        "drift": True,
        "quarantine": True,
    }


def test_each_check_fails_on_its_own_fact():
    assert not verdicts(Facts("churn"))["champion"]
    late = Facts(**{**HEALTHY.__dict__, "latest_scored_snapshot": date(2018, 11, 19)})
    assert not verdicts(late)["scores_fresh"]
    assert verdicts(late, max_score_lag_days=7)["scores_fresh"]
    weak = {**HEALTHY.realized, "roc_auc": 0.6, "pr_auc_lift": 1.2}
    checks = sla_checks(Facts(**{**HEALTHY.__dict__, "realized": weak}), MonitorConfig())
    realized = next(c for c in checks if c.name == "realized_performance")
    assert not realized.ok
    assert realized.detail == (
        "snapshot 2018-11-12 (400 rows, 20 churners): roc_auc 0.6000 < 0.65; pr_auc_lift 1.20 < 1.5"
    )
    # 5 of 40 = 12.5% > 10%
    assert not verdicts(Facts(**{**HEALTHY.__dict__, "drifted_features": 5}))["drift"]
    # 600 of 10,000 = 6% > 5%
    dirty = Facts(**{**HEALTHY.__dict__, "quarantined": 600, "silver_rows": 9400})
    quarantine = next(c for c in sla_checks(dirty, MonitorConfig()) if c.name == "quarantine")
    assert not quarantine.ok and quarantine.detail == (
        "600 of 10000 rows quarantined (6.00%, max 5.00%)"
    )


def test_checks_without_data_yet_pass_and_say_so_except_scores_never_written():
    fresh_lake = Facts("churn", champion_version=1, latest_feature_snapshot=date(2018, 11, 26))
    checks = {c.name: c for c in sla_checks(fresh_lake, MonitorConfig())}
    assert checks["realized_performance"].ok
    assert checks["realized_performance"].detail == "no matured scored snapshot yet"
    assert checks["drift"].ok and checks["quarantine"].ok
    assert not checks["scores_fresh"].ok


def test_retraining_follows_age_realized_performance_and_drift():
    policy = RetrainConfig(max_champion_age_days=28)
    retrain, reasons = retrain_decision(HEALTHY, MonitorConfig(), policy)
    assert not retrain
    assert reasons[0] == "champion v3 is 5.0 days old (<= 28)"
    old = Facts(**{**HEALTHY.__dict__, "champion_age_days": 30.5})
    retrain, reasons = retrain_decision(old, MonitorConfig(), policy)
    assert retrain and "30.5 days old (> retrain.max_champion_age_days 28)" in reasons[0]
    drifted = Facts(**{**HEALTHY.__dict__, "drifted_features": 10})
    assert retrain_decision(drifted, MonitorConfig(), policy)[0]
    weak = Facts(**{**HEALTHY.__dict__, "realized": {**HEALTHY.realized, "roc_auc": 0.55}})
    assert retrain_decision(weak, MonitorConfig(), policy)[0]
    assert retrain_decision(Facts("churn"), MonitorConfig(), policy) == (
        True,
        ["churn has no champion"],
    )


def test_the_alert_is_a_slack_message_naming_the_failed_checks():
    checks = sla_checks(Facts(**{**HEALTHY.__dict__, "drifted_features": 5}), MonitorConfig())
    body = alert_body(checks, "churn", "/lake")
    assert body["text"] == (
        "lakeml monitor: 1 of 5 checks failed for churn\n"
        "- drift: 5 of 40 features drifted on 2018-11-26 (12.5%, max 10.0%)"
    )
    assert [c["name"] for c in body["checks"] if not c["ok"]] == ["drift"]
