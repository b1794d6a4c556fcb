from __future__ import annotations

from pathlib import Path

import pytest

from lakeml.core.config import load_config
from lakeml.core.errors import LakemlError

CONF = Path(__file__).resolve().parents[2] / "conf" / "local.yaml"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_local_config_loads_and_puts_everything_under_root(tmp_path: Path) -> None:
    cfg = load_config(CONF, [f"storage.root={tmp_path}"])
    assert cfg.table("silver") == f"{tmp_path}/silver/events"
    assert cfg.source_path == f"{tmp_path}/raw/events"
    assert cfg.tracking_uri == f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    assert [m.type for m in cfg.train.models] == ["logistic_regression", "random_forest", "gbt"]


def test_set_overrides_are_typed(tmp_path: Path) -> None:
    cfg = load_config(CONF, ["generate.users=20", "features.windows=[3, 5]", "train.gate.margin=0"])
    assert cfg.generate.users == 20
    assert cfg.features.windows == [3, 5]
    assert cfg.train.gate.margin == 0.0


def test_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(LakemlError, match=r"unknown config key 'features\.widnows'"):
        load_config(CONF, ["features.widnows=[7]"])


def test_missing_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(LakemlError, match=r"missing config key 'storage\.root'"):
        load_config(write(tmp_path, "storage: {}\n"))


def test_wrong_type_is_named(tmp_path: Path) -> None:
    with pytest.raises(LakemlError, match=r"'generate\.users' must be a whole number"):
        load_config(CONF, ["generate.users=many"])


def test_env_interpolation_with_default_and_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LAKEML_TEST_ROOT", str(tmp_path / "r"))
    p = write(
        tmp_path, "storage:\n  root: ${LAKEML_TEST_ROOT}\nmlflow:\n  experiment: ${NOPE:-x}\n"
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
