"""The config sections of training: the model types and their grids, the split, the threshold,
the scikit-learn baseline, the champion gate and xgboost's distributed training.

Key `train` of `conf/<env>.yaml`; `lakeml.core.config` validates it with the rest of the file.
"""

from __future__ import annotations

import typing
from typing import Any, Literal

from pydantic import Field, model_validator

from lakeml.core.config_load import Fraction, NonEmpty, Percent, Text, rule
from lakeml.core.config_load import Section as _Section

ModelType = Literal["logistic_regression", "random_forest", "gbt", "xgboost"]
Metric = Literal["areaUnderPR", "areaUnderROC"]
ThresholdPolicy = Literal["best_f1", "top_k"]
MODEL_TYPES: tuple[str, ...] = typing.get_args(ModelType)
METRICS: tuple[str, ...] = typing.get_args(Metric)
THRESHOLD_POLICIES: tuple[str, ...] = typing.get_args(ThresholdPolicy)


class ModelSpec(_Section):
    KEY = "train.models[]"
    type: ModelType = Field(title="model type")
    grid: dict[Text, list[Any]] = Field(default_factory=dict)


class SplitConfig(_Section):
    """Out-of-time split: the latest labelled snapshots test, the ones before validate.

    `random` (for a table with a single snapshot) splits entities at random by fractions.
    `column` keeps a split the data ships with: rows whose `column` holds one of
    `test_values` test; of the others, `validation_fraction` of the entities (at random)
    validate and the rest train.
    """

    KEY = "train.split"
    method: Literal["out_of_time", "random", "column"] = Field("out_of_time", title="split method")
    test_snapshots: int = Field(1, ge=1)
    validation_snapshots: int = Field(1, ge=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    column: Text = ""
    test_values: list[Text] = Field(default_factory=list)

    @model_validator(mode="after")
    def _column_is_named(self) -> SplitConfig:
        if self.method == "column" and not (self.column and self.test_values):
            raise rule("", "method column needs split.column and split.test_values")
        return self

    @model_validator(mode="after")
    def _leaves_rows_to_train_on(self) -> SplitConfig:
        if self.test_fraction + self.validation_fraction >= 1:
            raise rule(
                "",
                "test_fraction + validation_fraction must leave rows to train on (got "
                f"{self.test_fraction:g} + {self.validation_fraction:g} >= 1)",
            )
        return self


class ThresholdConfig(_Section):
    KEY = "train.threshold"
    policy: ThresholdPolicy = Field("best_f1", title="threshold policy")
    top_k_pct: Percent = 10.0


class BaselineConfig(_Section):
    KEY = "train.baseline"
    enabled: bool = True
    sample_rows: int = Field(200000, ge=1)


class GateConfig(_Section):
    """A challenger becomes champion if it passes the floors and beats the champion's
    `metric` on the same test window by at least `margin`.

    The floors fit any churn rate: `min_pr_auc_lift` is PR AUC over the test window's base
    rate (a model that ranks at random scores about 1), `min_roc_auc` is 0.5 for random.
    `min_pr_auc` is an absolute floor (0: off). `baseline_max_shortfall`, when set, also
    asks the challenger's `metric` to come within that much of the scikit-learn baseline's
    on the same rows (null: off)."""

    KEY = "train.gate"
    metric: Metric = Field("areaUnderPR", title="metric")
    margin: float = Field(0.01, ge=0)
    min_roc_auc: Fraction = 0.65
    min_pr_auc_lift: float = Field(1.5, ge=0)
    min_pr_auc: Fraction = 0.0
    baseline_max_shortfall: float | None = Field(None, ge=0)


class XGBoostConfig(_Section):
    """Model type `xgboost` (xgboost.spark): one booster trained across `num_workers` Spark
    tasks at once (barrier mode), stopped early on the validation window."""

    KEY = "train.xgboost"
    # null: every task slot the session has (local[*]: the cores; a cluster: its executors').
    num_workers: int | None = Field(None, ge=1)
    # Rounds without a better validation metric (train.primary_metric) before stopping.
    early_stopping_rounds: int = Field(10, ge=1)


class TrainConfig(_Section):
    KEY = "train"
    entity_col: NonEmpty = "user_id"
    snapshot_col: NonEmpty = "snapshot_date"
    label_col: NonEmpty = "churned"
    categorical_cols: list[Text] = Field(default_factory=list)
    exclude_cols: list[Text] = Field(default_factory=list)
    split: SplitConfig = Field(default_factory=SplitConfig)
    class_weight: Literal["balanced", "none"] = Field("balanced", title="class weight")
    primary_metric: Metric = Field("areaUnderPR", title="metric")
    parallelism: int = Field(2, ge=1)
    seed: int = 42
    # An empty list written in the file is an error; left out, training says what to add.
    models: list[ModelSpec] = Field(default_factory=list, min_length=1)
    threshold: ThresholdConfig = Field(default_factory=ThresholdConfig)
    top_k_pcts: list[Percent] = Field(default_factory=lambda: [5.0, 10.0, 20.0])
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    xgboost: XGBoostConfig = Field(default_factory=XGBoostConfig)
