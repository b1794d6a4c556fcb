"""The one place that sequences lakeml's stages, prints progress and builds the summary.

Each stage is a function of (session, its config section, its paths) that returns a frozen
dataclass and never prints; the `run_*` functions here call them in order, report progress
and add what the JSON summary needs. The CLI and `jobs/` call these functions. Stage
modules are imported inside the functions, so importing this package (and the CLI) stays
cheap and a config error is reported before pyspark.ml, MLflow or scikit-learn load.

The modules follow the journey: `data` (generate, features), `model` (train, score, realized
performance), `operations` (monitor, retrain, report, models, serve, promote) and `journey`
(all of it in one run, and its summary for people). Import the functions from here.
"""

from __future__ import annotations

from lakeml.pipeline.data import run_features, run_generate, run_table_features, table_summary
from lakeml.pipeline.journey import (
    MLFLOW_UI,
    NO_CHAMPION,
    STEPS,
    print_human_summary,
    run_pipeline,
)
from lakeml.pipeline.model import (
    connect_tracking,
    preflight_train,
    run_performance,
    run_score,
    run_train,
)
from lakeml.pipeline.operations import (
    CHECK_FAILED,
    gather_facts,
    run_models,
    run_monitor,
    run_promote,
    run_report,
    run_retrain,
    run_serve,
)

__all__ = [
    "CHECK_FAILED",
    "MLFLOW_UI",
    "NO_CHAMPION",
    "STEPS",
    "connect_tracking",
    "gather_facts",
    "preflight_train",
    "print_human_summary",
    "run_features",
    "run_generate",
    "run_models",
    "run_monitor",
    "run_performance",
    "run_pipeline",
    "run_promote",
    "run_report",
    "run_retrain",
    "run_score",
    "run_serve",
    "run_table_features",
    "run_train",
    "table_summary",
]
