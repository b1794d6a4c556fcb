from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from lakeml.core.config import (
    METRICS,
    MODEL_TYPES,
    THRESHOLD_POLICIES,
    Config,
    SnapshotConfig,
    StorageConfig,
    load_config,
)
from lakeml.core.errors import LakemlError

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf" / "local.yaml"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def load_error(*overrides: str) -> str:
    with pytest.raises(LakemlError) as info:
        load_config(CONF, list(overrides))
    return str(info.value)


def test_local_config_loads_and_puts_everything_under_root(tmp_path: Path) -> None:
    cfg = load_config(CONF, [f"storage.root={tmp_path}"])
    assert cfg.table("silver") == f"{tmp_path}/silver/events"
    assert cfg.source_path == f"{tmp_path}/raw/events"
    assert cfg.tracking_uri == f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    assert [m.type for m in cfg.train.models] == [
        "logistic_regression",
        "random_forest",
        "gbt",
        "xgboost",
    ]


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "conf").glob("*.yaml")))
def test_every_shipped_config_loads(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # cluster.yaml takes these from the environment, with no defaults.
    monkeypatch.setenv("LAKEML_ROOT", "hdfs://namenode:8020/lakeml")
    monkeypatch.setenv("SPARK_MASTER_URL", "spark://master:7077")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    cfg = load_config(ROOT / "conf" / f"{name}.yaml")
    assert cfg.storage.root == "hdfs://namenode:8020/lakeml" and cfg.train.models
    # A value from the environment is shown (logged to MLflow) as *** (test_secrets.py).
    assert cfg.raw["storage"]["root"] == "***"


def test_raw_holds_the_resolved_root_when_it_comes_from_the_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LAKEML_ROOT", raising=False)
    cfg = load_config(CONF)  # root: ${LAKEML_ROOT:-lakeml-data}, relative to the cwd
    assert cfg.storage.root == str(Path("lakeml-data").resolve())
    assert cfg.raw["storage"]["root"] == cfg.storage.root


def test_set_overrides_are_typed(tmp_path: Path) -> None:
    cfg = load_config(CONF, ["generate.users=20", "features.windows=[3, 5]", "train.gate.margin=0"])
    assert cfg.generate.users == 20
    assert cfg.features.windows == [3, 5]
    assert cfg.train.gate.margin == 0.0


def test_yaml_dates_and_numbers_are_accepted_where_text_is_expected() -> None:
    cfg = load_config(
        CONF,
        [
            "generate.start_date=2018-10-05",  # YAML reads these as dates
            "features.snapshots.dates=[2018-11-01, '2018-11-08']",
            "spark.conf={spark.sql.shuffle.partitions: 4}",
        ],
    )
    assert cfg.generate.start_date == "2018-10-05"
    assert cfg.features.snapshots.dates == ["2018-11-01", "2018-11-08"]
    assert cfg.spark.conf == {"spark.sql.shuffle.partitions": "4"}


def test_raw_is_the_merged_mapping_and_does_not_count_for_equality(tmp_path: Path) -> None:
    cfg = load_config(CONF, [f"storage.root={tmp_path}", "train.seed=7"])
    assert cfg.raw["train"]["seed"] == 7
    built = Config(**{k: getattr(cfg, k) for k in type(cfg).model_fields})
    assert built.raw == {} and built == cfg
    assert cfg.digest() != built.digest()


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["score.risk_bands=0"], "score.risk_bands"),
        (["score.arrow_batch_size=0"], "score.arrow_batch_size"),
        (["features.windows=[]"], "features.windows"),
        (["features.windows=[7, 0]"], "features.windows[1]"),
        (["features.label_horizon_days=0"], "features.label_horizon_days"),
        (["features.snapshots.every_days=0"], "features.snapshots.every_days"),
        (["features.snapshots.min_history_days=-1"], "features.snapshots.min_history_days"),
        (['features.snapshots.dates=["10/20/2018"]'], "features.snapshots.dates[0]"),
        (["train.split.test_snapshots=0"], "train.split.test_snapshots"),
        (["train.split.validation_snapshots=0"], "train.split.validation_snapshots"),
        (["train.split.method=bogus"], "train.split.method"),
        (["train.split.test_fraction=1.5"], "train.split.test_fraction"),
        (["train.split.validation_fraction=0"], "train.split.validation_fraction"),
        (["train.split.test_fraction=0.5", "train.split.validation_fraction=0.5"], "train.split"),
        (["train.class_weight=x"], "train.class_weight"),
        (["train.threshold.policy=x"], "train.threshold.policy"),
        (["train.threshold.top_k_pct=0"], "train.threshold.top_k_pct"),
        (["train.top_k_pcts=[5, 0]"], "train.top_k_pcts[1]"),
        (["train.models=[{type: xgb}]"], "train.models[0].type"),
        (["train.models=[]"], "train.models"),
        (["train.primary_metric=x"], "train.primary_metric"),
        (["train.gate.metric=x"], "train.gate.metric"),
        (["train.gate.margin=-0.1"], "train.gate.margin"),
        (["train.gate.min_pr_auc=1.5"], "train.gate.min_pr_auc"),
        (["train.parallelism=0"], "train.parallelism"),
        (["train.baseline.sample_rows=0"], "train.baseline.sample_rows"),
        (["generate.users=0"], "generate.users"),
        (["generate.days=0"], "generate.days"),
        (["generate.start_date=bad"], "generate.start_date"),
        (["generate.start_date=2018-13-01"], "generate.start_date"),
        (["generate.dirt.duplicate_rate=1.5"], "generate.dirt.duplicate_rate"),
        (["generate.dirt.duplicate_rate=0.6", "generate.dirt.malformed_rate=0.6"], "generate.dirt"),
        (["monitor.psi_bins=1"], "monitor.psi_bins"),
        (["monitor.null_rate_threshold=2"], "monitor.null_rate_threshold"),
        (["mlflow.timeout_seconds=0"], "mlflow.timeout_seconds"),
        (["source.kind=table", "source.table.label_col=Churn"], "source.table.entity_col"),
        (["source.kind=x"], "source.kind"),
        (["spark.log_level=LOUD"], "spark.log_level"),
        (["storage.root="], "storage.root"),
        (["tables.silver="], "tables.silver"),
    ],
)
def test_invalid_values_fail_at_load_naming_the_key(overrides: list[str], key: str) -> None:
    message = load_error(*overrides)
    assert f"config key '{key}'" in message
    assert "\n" not in message


def test_messages_say_what_is_allowed() -> None:
    assert load_error("score.risk_bands=0") == (
        "config key 'score.risk_bands': must be at least 1 (got 0)"
    )
    assert load_error("train.models=[{type: xgb}]") == (
        "config key 'train.models[0].type': unknown model type 'xgb'; "
        "choose from logistic_regression, random_forest, gbt, xgboost"
    )
    assert "unknown metric 'accuracy'" in load_error("train.primary_metric=accuracy")
    assert "must be a whole number (got 'many')" in load_error("generate.users=many")
    assert "'10/20/2018' is not a date; write it as YYYY-MM-DD" in load_error(
        'features.snapshots.dates=["10/20/2018"]'
    )


def test_a_table_source_names_its_snapshot_exactly_once() -> None:
    table = ["source.kind=table", "source.table.entity_col=id", "source.table.label_col=Churn"]
    assert "exactly one of snapshot_date and snapshot_col" in load_error(*table)
    both = ["source.table.snapshot_date=2024-01-31", "source.table.snapshot_col=day"]
    assert "config key 'source.table'" in load_error(*table, *both)
    assert "config key 'source.table.snapshot_date'" in load_error(
        *table, "source.table.snapshot_date=31/01/2024"
    )
    cfg = load_config(CONF, [*table, "source.table.snapshot_date=2024-01-31"])
    assert cfg.source.table.snapshot_date == "2024-01-31"


def test_every_error_is_reported_on_one_line() -> None:
    message = load_error("score.risk_bands=0", "train.parallelism=0", "train.modles=[]")
    assert "\n" not in message
    assert message.count("; ") >= 2
    assert "unknown config key 'train.modles'; known keys here: baseline, " in message
    for key in ("score.risk_bands", "train.parallelism"):
        assert f"config key '{key}'" in message


def test_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(LakemlError, match=r"unknown config key 'features\.widnows'"):
        load_config(CONF, ["features.widnows=[7]"])


def test_missing_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(LakemlError, match=r"missing config key 'storage\.root'"):
        load_config(write(tmp_path, "storage: {}\n"))


def test_wrong_type_is_named(tmp_path: Path) -> None:
    with pytest.raises(LakemlError, match=r"'generate\.users': must be a whole number"):
        load_config(CONF, ["generate.users=many"])
    with pytest.raises(LakemlError, match=r"'train': must be a section"):
        load_config(CONF, ["train=3"])


def test_a_section_built_in_code_names_its_key_too() -> None:
    with pytest.raises(LakemlError, match=r"config key 'features\.snapshots\.every_days'"):
        SnapshotConfig(every_days=0)
    with pytest.raises(LakemlError, match=r"config key 'storage\.root': must not be empty"):
        StorageConfig(root="")


def test_choices_are_exported_for_other_modules() -> None:
    assert MODEL_TYPES == ("logistic_regression", "random_forest", "gbt", "xgboost")
    assert METRICS == ("areaUnderPR", "areaUnderROC")
    assert THRESHOLD_POLICIES == ("best_f1", "top_k")


def test_env_interpolation_with_default_and_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LAKEML_TEST_ROOT", str(tmp_path / "r"))
    p = write(
        tmp_path,
        "preset: sparkify\nstorage:\n  root: ${LAKEML_TEST_ROOT}\n"
        "mlflow:\n  experiment: ${NOPE:-x}\n",
    )
    cfg = load_config(p)
    assert cfg.storage.root == str(tmp_path / "r")
    assert cfg.mlflow.experiment == "x"
    monkeypatch.delenv("LAKEML_TEST_ROOT")
    with pytest.raises(LakemlError, match=r"'storage\.root'.*LAKEML_TEST_ROOT"):
        load_config(p)


def test_unknown_model_type_and_metric_are_errors() -> None:
    with pytest.raises(LakemlError, match="unknown model type 'xgb'"):
        load_config(CONF, ["train.models=[{type: xgb}]"])
    with pytest.raises(LakemlError, match="unknown metric 'accuracy'"):
        load_config(CONF, ["train.primary_metric=accuracy"])


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LakemlError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_importing_config_starts_no_heavy_library() -> None:
    code = (
        "import sys, lakeml.core.config; "
        "print(sorted({'pyspark', 'mlflow', 'sklearn'} & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_bad_value_fails_the_pipeline_before_spark_starts(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lakeml.cli",
            "pipeline",
            "--conf",
            "conf/local.yaml",
            "--set",
            f"storage.root={tmp_path}",
            "--set",
            "score.risk_bands=0",
        ],  # fmt: skip
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "score.risk_bands" in lines[0], proc.stderr
    assert elapsed < 5, f"took {elapsed:.1f}s"
    # A SparkSession would have created storage.root (or a java child) before failing.
    assert list(tmp_path.iterdir()) == []
