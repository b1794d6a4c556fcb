"""Reading a config: file errors, `--set` into free-form mappings, typed `${VAR}` values,
and the allow-list of column types."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakeml import cli
from lakeml.core.config import Config, TableSourceConfig, load_config
from lakeml.core.config_load import SPARK_TYPES
from lakeml.core.config_read import free_form_keys
from lakeml.core.errors import LakemlError

CONF = Path(__file__).resolve().parents[2] / "conf" / "local.yaml"
INJECTION = "STRING) || reflect('java.lang.System','getProperty','user.home'"


def write(tmp_path: Path, body: bytes | str) -> Path:
    p = tmp_path / "c.yaml"
    if isinstance(body, str):
        p.write_text(body, encoding="utf-8")
    else:
        p.write_bytes(body)
    return p


def load_error(path: Path | str = CONF, *overrides: str) -> str:
    with pytest.raises(LakemlError) as info:
        load_config(path, list(overrides))
    return str(info.value)


# --set into mappings whose keys are Spark's


def test_a_spark_conf_key_with_dots_is_set_as_one_key() -> None:
    cfg = load_config(CONF, ["spark.conf.spark.hadoop.fs.s3a.endpoint=http://minio:9000"])
    assert cfg.spark.conf == {
        "spark.sql.shuffle.partitions": "8",  # from conf/local.yaml, kept
        "spark.driver.memory": "8g",
        "spark.ui.enabled": "false",
        "spark.hadoop.fs.s3a.endpoint": "http://minio:9000",
    }


def test_spark_conf_values_typed_by_yaml_reach_spark_as_its_strings() -> None:
    overrides = ["spark.conf.spark.eventLog.enabled=true", "spark.conf.spark.x.y=2"]
    cfg = load_config(CONF, overrides)
    assert cfg.spark.conf["spark.eventLog.enabled"] == "true"  # YAML's True, as Spark spells it
    assert cfg.spark.conf["spark.x.y"] == "2"


def test_every_free_form_mapping_takes_dotted_keys() -> None:
    assert {("spark", "conf"), ("source", "table", "options"), ("source", "table", "types")} <= (
        free_form_keys(Config)
    )
    assert ("spark",) not in free_form_keys(Config)
    cfg = load_config(
        CONF,
        ["source.table.options.spark.sql.x=1", "source.table.types.a.b=int"],
    )
    # local.yaml has no source.table.options: the one set replaces the default mapping.
    assert cfg.source.table.options == {"spark.sql.x": "1"}
    assert cfg.source.table.types == {"a.b": "int"}


def test_a_dotted_key_outside_a_free_form_mapping_still_walks_sections() -> None:
    assert load_config(CONF, ["train.gate.margin=0.5"]).train.gate.margin == 0.5
    assert "unknown config key 'spark.nope'" in load_error(CONF, "spark.nope.x=1")


# --set into one item of a list


def test_a_number_after_a_list_key_sets_one_item_and_keeps_the_others() -> None:
    cfg = load_config(CONF, ["train.models.0.grid.maxIter=[20]", "train.models.1.type=gbt"])
    # conf/local.yaml: logistic_regression (maxIter [50]), random_forest, gbt, xgboost.
    first, second = cfg.train.models[0], cfg.train.models[1]
    assert (first.type, first.grid["maxIter"], first.grid["regParam"]) == (
        "logistic_regression",
        [20],
        [0.01, 0.1],
    )
    assert second.type == "gbt"
    assert len(cfg.train.models) == len(load_config(CONF).train.models)


def test_a_whole_item_can_be_replaced_and_is_validated_like_the_file() -> None:
    cfg = load_config(CONF, ["train.models.1={type: gbt, grid: {maxDepth: [2]}}"])
    assert (cfg.train.models[1].type, cfg.train.models[1].grid) == ("gbt", {"maxDepth": [2]})
    assert "'train.models[1].type': unknown model type" in load_error(
        CONF, "train.models.1={type: nope}"
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.models.9.type=gbt", "train.models has 4 item(s), numbered from 0"),
        ("train.models.first.type=gbt", "train.models is a list; pick an item by number"),
        ("train.models.x=1", "train.models is a list; pick an item by number"),
        ("train.models.0.type.x=1", "'type' is not a section"),
    ],
)
def test_a_list_index_that_is_not_there_is_a_one_line_error(override: str, message: str) -> None:
    error = load_error(CONF, override)
    assert message in error and "\n" not in error, error


# ${VAR} values typed as YAML would type them


def test_a_whole_value_reference_is_typed_like_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEML_TEST_DAYS", "21")
    monkeypatch.setenv("LAKEML_TEST_ZIP", "017")
    p = write(
        tmp_path,
        f"preset: sparkify\nstorage: {{root: {tmp_path}}}\n"
        "generate:\n  users: ${LAKEML_TEST_UNSET:-500}\n  days: ${LAKEML_TEST_DAYS}\n"
        "train:\n  gate: {margin: '${LAKEML_TEST_UNSET:-0.05}'}\n"
        "  split: {test_fraction: '${LAKEML_TEST_UNSET:-1e-1}'}\n"
        "spark:\n  delta_packages: ${LAKEML_TEST_UNSET:-false}\n"
        "mlflow:\n  experiment: ${LAKEML_TEST_ZIP}\n"
        "  registered_model: model-${LAKEML_TEST_DAYS}\n",
    )
    cfg = load_config(p)
    assert cfg.generate.users == 500
    assert cfg.generate.days == 21
    assert cfg.train.gate.margin == 0.05
    assert cfg.train.split.test_fraction == 0.1
    assert cfg.spark.delta_packages is False
    # YAML would read 017 as the octal 15: a value it would change stays text.
    assert cfg.mlflow.experiment == "017"
    assert cfg.mlflow.registered_model == "model-21"  # text around a reference: text


def test_a_referenced_value_of_the_wrong_type_names_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEML_TEST_DAYS", "yes")
    p = write(
        tmp_path,
        f"preset: sparkify\nstorage: {{root: {tmp_path}}}\n"
        "generate: {days: '${LAKEML_TEST_DAYS}'}\n",
    )
    assert load_error(p) == "config key 'generate.days': must be a whole number (got 'yes')"


# Files that are not UTF-8 or not YAML


def test_a_file_that_is_not_utf8_is_one_line_naming_it(tmp_path: Path) -> None:
    p = write(tmp_path, b"storage:\n  root: /tmp/x\nmlflow:\n  experiment: caf\xe9\n")
    assert load_error(p) == (
        f"config file {str(p)!r} is not UTF-8 text (byte 0xe9 on line 4); save it as UTF-8"
    )


def test_invalid_yaml_is_one_line_naming_the_file_and_line(tmp_path: Path) -> None:
    p = write(tmp_path, "storage:\n  root: /tmp/x\ntrain: [1, 2\n")
    message = load_error(p)
    assert message.startswith(f"config file {str(p)!r} is not valid YAML (line 4, column 1): ")
    assert "\n" not in message and "<unicode string>" not in message


def test_the_cli_exits_2_with_one_line_for_a_broken_file(tmp_path: Path, capsys) -> None:
    p = write(tmp_path, b"storage: {root: \xff\xfe}\n")
    assert cli.main(["models", "--conf", str(p)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"lakeml models: error: config file {str(p)!r} is not UTF-8 text (byte 0xff on line 1); "
        "save it as UTF-8\n"
    )


# Column types: an allow-list, never SQL


def test_sql_in_a_column_type_is_rejected_at_load_naming_the_key() -> None:
    message = load_error(CONF, f'source.table.types.gender="{INJECTION}"')
    assert message.startswith("config key 'source.table.types.gender': ")
    assert "is not a type a column can be cast to" in message
    assert "\n" not in message
    with pytest.raises(LakemlError, match=r"'source\.table\.types\.x'"):
        TableSourceConfig(types={"x": INJECTION})  # built in code: the same check


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("STRING", "string"),
        ("Integer", "int"),
        ("long", "bigint"),
        ("byte", "tinyint"),
        ("short", "smallint"),
        ("real", "float"),
        ("Timestamp_NTZ", "timestamp_ntz"),
        ("DECIMAL(10, 2)", "decimal(10,2)"),
        ("decimal(38,38)", "decimal(38,38)"),
        ("decimal", "decimal(10,0)"),
    ],
)
def test_spark_type_names_are_accepted_in_any_case_and_spelling(written: str, meant: str) -> None:
    cfg = load_config(CONF, [f'source.table.types.c="{written}"'])
    assert cfg.source.table.types == {"c": meant}


@pytest.mark.parametrize(
    "written", ["decimal(39,0)", "decimal(0,0)", "decimal(5,6)", "varchar(10)", "map<string,int>"]
)
def test_types_outside_the_allow_list_are_errors(written: str) -> None:
    assert "source.table.types.c" in load_error(CONF, f'source.table.types.c="{written}"')


def test_the_allow_list_is_spark_simple_types() -> None:
    assert SPARK_TYPES == (
        "string", "boolean", "tinyint", "smallint", "int", "bigint", "float", "double", "date",
        "timestamp", "timestamp_ntz",
    )  # fmt: skip
