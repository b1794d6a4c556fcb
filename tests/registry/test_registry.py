from __future__ import annotations

import io
from pathlib import Path

import mlflow
import numpy as np
import pytest

from lakeml.core.config import GateConfig, load_config
from lakeml.core.errors import LakemlError
from lakeml.core.report import Report
from lakeml.pipeline import run_models, run_promote
from lakeml.registry.gate import gate_decision
from lakeml.registry.versions import alias_version
from lakeml.tracking.store import connect
from lakeml.training.evaluate import binary_metrics

CONF = Path(__file__).resolve().parents[2] / "conf" / "local.yaml"
GATE = GateConfig(
    metric="areaUnderPR", margin=0.01, min_roc_auc=0.7, min_pr_auc_lift=1.5, min_pr_auc=0.2
)


def metrics(roc: float, pr: float, base_rate: float = 0.1) -> dict[str, float]:
    return {"roc_auc": roc, "pr_auc": pr, "base_rate": base_rate}


def test_first_model_passing_the_floors_is_promoted():
    result = gate_decision(metrics(0.80, 0.40), None, GATE)
    assert result.promoted and result.decision == "promoted"
    assert "no champion yet" in result.reasons


def test_first_model_below_a_floor_is_rejected():
    result = gate_decision(metrics(0.65, 0.40), None, GATE)
    assert not result.promoted and result.decision == "rejected"
    assert any("below gate.min_roc_auc 0.7" in r for r in result.reasons)


def test_an_equal_challenger_does_not_move_the_champion():
    result = gate_decision(metrics(0.80, 0.40), metrics(0.80, 0.40), GATE, "3")
    assert not result.promoted
    assert "does not beat it by gate.margin 0.01" in result.reasons[-1]
    assert "champion v3" in result.reasons[-1]


def test_a_worse_challenger_does_not_move_the_champion():
    assert not gate_decision(metrics(0.85, 0.38), metrics(0.80, 0.40), GATE, "3").promoted


def test_a_challenger_better_by_less_than_the_margin_does_not_move_the_champion():
    # PR AUC +0.005 < margin 0.01
    assert not gate_decision(metrics(0.80, 0.405), metrics(0.80, 0.40), GATE, "3").promoted


def test_a_challenger_beating_the_margin_is_promoted():
    # PR AUC 0.45 - 0.40 = +0.05 >= 0.01
    result = gate_decision(metrics(0.80, 0.45), metrics(0.80, 0.40), GATE, "3")
    assert result.promoted
    assert "+0.0500" in result.reasons[-1]


def test_beating_by_exactly_the_margin_counts_despite_float_rounding():
    # 0.71 - 0.70 is 0.00999999... in floating point
    assert gate_decision(metrics(0.8, 0.71), metrics(0.8, 0.70), GATE, "3").promoted


def test_failing_an_absolute_floor_blocks_even_a_much_better_challenger():
    # PR AUC 0.19 beats 0.10 by 0.09 but is below min_pr_auc 0.2
    result = gate_decision(metrics(0.90, 0.19), metrics(0.90, 0.10), GATE, "3")
    assert not result.promoted
    assert any("below gate.min_pr_auc 0.2" in r for r in result.reasons)


def test_gate_metric_roc_auc_compares_roc_auc():
    gate = GateConfig(metric="areaUnderROC", margin=0.01, min_roc_auc=0.7, min_pr_auc=0.2)
    assert gate.min_pr_auc_lift == 1.5
    # ROC +0.05 passes even though PR AUC got worse
    assert gate_decision(metrics(0.85, 0.35), metrics(0.80, 0.40), gate, "3").promoted


def test_the_pr_auc_floor_is_a_multiple_of_the_churn_rate():
    # The eventsim-like case: 5.7% churn, PR AUC 0.159 = 2.79x the base rate.
    result = gate_decision(metrics(0.735, 0.159, 0.057), None, GateConfig())
    assert result.promoted, result.reasons
    assert "0.1590 = 2.79x the churn rate 0.0570, >= gate.min_pr_auc_lift 1.5" in result.reasons[1]
    # 0.07 / 0.057 = 1.23x: hardly better than calling customers at random.
    result = gate_decision(metrics(0.735, 0.07, 0.057), None, GateConfig())
    assert not result.promoted
    assert "is below gate.min_pr_auc_lift 1.5" in result.reasons[1]


def test_a_baseline_floor_asks_the_challenger_to_come_close_to_the_baseline():
    gate = GateConfig(baseline_max_shortfall=0.02)
    close = gate_decision(metrics(0.8, 0.39), None, gate, baseline=metrics(0.8, 0.40))
    far = gate_decision(metrics(0.8, 0.35), None, gate, baseline=metrics(0.8, 0.40))
    missing = gate_decision(metrics(0.8, 0.39), None, gate)
    assert close.promoted and not far.promoted and not missing.promoted
    assert "-0.0500, shortfall is below gate.baseline_max_shortfall 0.02" in far.reasons[2]


def rare_churn_scores(seed: int, n: int = 4000, rate: float = 0.05) -> tuple:
    """Labels at a 5% churn rate and scores carrying a modest signal (ROC AUC about 0.73)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(int)
    p = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + 0.9 * y - 3)))
    return y, p


def test_default_floors_accept_a_useful_rare_churn_model_and_reject_shuffled_labels():
    y, p = rare_churn_scores(seed=7)
    useful = binary_metrics(y, p, 0.5, [10.0])
    shuffled = binary_metrics(np.random.default_rng(8).permutation(y), p, 0.5, [10.0])
    # The figures the floors see, by a second method: ROC AUC as the share of
    # (churner, stayer) pairs ranked right, PR AUC about the base rate when shuffled.
    pos, neg = p[y == 1], p[y == 0]
    assert useful["roc_auc"] == pytest.approx((pos[:, None] > neg[None, :]).mean(), abs=1e-9)
    assert 0.68 < useful["roc_auc"] < 0.78 and 0.04 < useful["base_rate"] < 0.06
    assert gate_decision(useful, None, GateConfig()).promoted
    assert shuffled["pr_auc"] / shuffled["base_rate"] < 1.5
    assert not gate_decision(shuffled, None, GateConfig()).promoted


def test_a_champion_that_cannot_score_the_window_is_replaced_if_the_floors_pass():
    result = gate_decision(metrics(0.8, 0.4), None, GATE, "3", "it lacks column x")
    assert result.promoted
    assert "champion v3 not comparable: it lacks column x" in result.reasons


@pytest.fixture(scope="module")
def registry_cfg(tmp_path_factory):
    """A SQLite registry with two versions of the churn model; v1 is champion."""
    root = tmp_path_factory.mktemp("registry")
    cfg = load_config(CONF, [f"storage.root={root}"])
    client = connect(cfg.mlflow, cfg.tracking_uri, cfg.artifact_location)
    name = cfg.mlflow.registered_model
    client.create_registered_model(name)
    for i, (roc, pr) in enumerate([(0.81, 0.42), (0.83, 0.47)], start=1):
        with mlflow.start_run() as run:
            folder = root / f"model{i}"
            folder.mkdir()
            (folder / "MLmodel").write_text("flavors: {}\n")
            mlflow.log_artifacts(str(folder), "model")
        client.create_model_version(
            name,
            f"{run.info.artifact_uri}/model",
            run_id=run.info.run_id,
            tags={"test_roc_auc": str(roc), "test_pr_auc": str(pr), "gate_decision": "promoted"},
        )
    client.set_registered_model_alias(name, "champion", "1")
    return cfg


def test_list_models_shows_versions_aliases_and_metrics(registry_cfg, capsys):
    report = Report("models", stream=io.StringIO())
    run_models(registry_cfg, report)
    rows = report.summary["models"]
    assert [(r["version"], r["aliases"], r["test_pr_auc"]) for r in rows] == [
        ("2", [], "0.47"),
        ("1", ["champion"], "0.42"),
    ]
    printed = capsys.readouterr().out
    assert "champion" in printed and "0.4700" in printed


def test_promote_moves_the_alias_and_says_what_it_replaced(registry_cfg):
    report = Report("promote", stream=io.StringIO())
    run_promote(registry_cfg, report, version="2")
    client = connect(registry_cfg.mlflow, registry_cfg.tracking_uri, registry_cfg.artifact_location)
    assert (
        str(alias_version(client, registry_cfg.mlflow.registered_model, "champion").version) == "2"
    )
    assert report.summary["promoted"]["previous_version"] == "1"
    # and back, by hand: a rollback
    run_promote(registry_cfg, Report("promote", stream=io.StringIO()), version="1")
    assert (
        str(alias_version(client, registry_cfg.mlflow.registered_model, "champion").version) == "1"
    )


def test_promoting_a_missing_version_is_a_clear_error(registry_cfg):
    with pytest.raises(LakemlError, match=r"version '7' of model 'lakeml-churn' does not exist"):
        run_promote(registry_cfg, Report("promote", stream=io.StringIO()), version="7")


def test_list_models_with_nothing_registered_says_so(registry_cfg):
    out = io.StringIO()
    report = Report("models", stream=out)
    cfg = load_config(
        CONF, [f"storage.root={registry_cfg.storage.root}", "mlflow.registered_model=other"]
    )
    run_models(cfg, report)
    assert report.summary["models"] == []
    assert "no versions of 'other' registered yet" in out.getvalue()
