"""The model-version tag contract: what training writes on every registered version and
what scoring, drift and the registry read back. The names live here and nowhere else."""

from __future__ import annotations

# How to score: the decision threshold and the key columns of the model's input.
THRESHOLD = "threshold"
ENTITY_COL = "entity_col"
SNAPSHOT_COL = "snapshot_col"
LABEL_COL = "label_col"
# Lineage: the gold tables and Delta versions the training set was read from.
FEATURES_PATH = "features_path"
FEATURES_VERSION = "features_version"
LABELS_PATH = "labels_path"
LABELS_VERSION = "labels_version"
# The split: snapshot dates of each window, the method, a random or column split's fractions
# and seed, and a column split's column and test values.
TRAIN_SNAPSHOTS = "train_snapshots"
VALIDATION_SNAPSHOTS = "validation_snapshots"
TEST_SNAPSHOTS = "test_snapshots"
SPLIT_METHOD = "split_method"
SPLIT_FRACTIONS = "split_fractions"
SPLIT_COLUMN = "split_column"
SPLIT_TEST_VALUES = "split_test_values"  # a JSON list
# The gate and the model's headline facts.
GATE_DECISION = "gate_decision"
GATE_REASONS = "gate_reasons"
TEST_ROC_AUC = "test_roc_auc"
TEST_PR_AUC = "test_pr_auc"
MODEL_TYPE = "model_type"
CONFIG_DIGEST = "config_digest"
# An xgboost version's booster for use without a JVM (lakeml.scoring.native): its model URI,
# the encoding artifact beside it, and the largest |native - Spark| probability on the test
# window, checked at registration (parity holds at NATIVE_PARITY_TOLERANCE or below).
NATIVE_MODEL_URI = "native_model_uri"
NATIVE_ENCODING = "native_encoding_uri"
NATIVE_PARITY = "native_parity_max_abs_diff"
NATIVE_PARITY_TOLERANCE = 1e-6
# The test window's score distribution (JSON: inner bin edges, each bin's share, rows), the
# reference of the score PSI drift reports.
SCORE_REFERENCE = "score_reference"
# What drift needs to rebuild the training window.
DRIFT_LINEAGE = (FEATURES_PATH, FEATURES_VERSION, TRAIN_SNAPSHOTS)


def promoted_by_hand(alias: str) -> str:
    """The tag `lakeml promote` sets (to the UTC time) on a version it moved `alias` to."""
    return f"promoted_by_hand_{alias}"


def snapshots_tag(window: str) -> str:
    """`train_snapshots`, `validation_snapshots` or `test_snapshots`."""
    return {"train": TRAIN_SNAPSHOTS, "validation": VALIDATION_SNAPSHOTS, "test": TEST_SNAPSHOTS}[
        window
    ]


def threshold(tags: dict[str, str], default: float) -> float:
    """The version's decision threshold, `default` when it has none."""
    value = tags.get(THRESHOLD)
    return float(value) if value else default


def version_tags(
    *,
    threshold: float,
    entity_col: str,
    snapshot_col: str,
    label_col: str,
    lineage: dict[str, str],
    split: dict[str, str],
    gate_decision: str,
    gate_reasons: str,
    test_roc_auc: float,
    test_pr_auc: float,
    model_type: str,
    config_digest: str,
    score_reference: str = "",
) -> dict[str, str]:
    """Every tag a registered version carries, as strings."""
    return {
        **({SCORE_REFERENCE: score_reference} if score_reference else {}),
        THRESHOLD: repr(float(threshold)),
        ENTITY_COL: entity_col,
        SNAPSHOT_COL: snapshot_col,
        LABEL_COL: label_col,
        **lineage,
        **split,
        GATE_DECISION: gate_decision,
        GATE_REASONS: gate_reasons,
        TEST_ROC_AUC: repr(float(test_roc_auc)),
        TEST_PR_AUC: repr(float(test_pr_auc)),
        MODEL_TYPE: model_type,
        CONFIG_DIGEST: config_digest,
    }
