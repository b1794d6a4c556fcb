"""Secrets stay out of the logged config, the messages and the summary."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from lakeml import cli
from lakeml.core.config import Config, load_config
from lakeml.core.errors import LakemlError
from lakeml.core.report import Report
from lakeml.core.secrets import (
    RedactingStream,
    is_secret_name,
    redact_mapping,
    redact_text,
    redact_uri,
    secret_values,
)
from lakeml.tracking.store import check_reachable

SECRET = "tok-9f8e7d6c5b4a"  # what LAKEML_TEST_TOKEN holds in these tests


@pytest.mark.parametrize(
    "name",
    [
        "spark.hadoop.fs.s3a.secret.key",
        "spark.hadoop.fs.s3a.access.key",
        "spark.hadoop.fs.s3a.session.token",
        "fs.azure.account.key.acct.dfs.core.windows.net",
        "spark.ssl.keyPassword",
        "password",
        "db_passwd",
        "gcp_credentials",
        "AWS_SECRET_ACCESS_KEY",
        "DATABRICKS_TOKEN",
        "apiKey",
    ],
)
def test_names_that_say_secret_are_secret(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "spark.sql.shuffle.partitions",
        "spark.ssl.keyStore",
        "LAKEML_ROOT",
        "SPARK_MASTER_URL",
        "customer_key",  # a column of a table, in source.table.types
    ],
)
def test_ordinary_names_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)


def _keys(model: type[Any], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        out.append(f"{prefix}{name}")
        if isinstance(field.annotation, type) and hasattr(field.annotation, "model_fields"):
            out += _keys(field.annotation, f"{prefix}{name}.")
    return out


def test_no_key_of_lakemls_own_config_is_taken_for_a_secret() -> None:
    keys = _keys(Config)
    assert "mlflow.tracking_uri" in keys and "spark.conf" in keys  # the walk went deep
    assert [k for k in keys if any(is_secret_name(part) for part in k.split("."))] == []


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("http://alice:pw@host:5000", "http://alice:***@host:5000"),
        ("https://alice:p@ss@host/path", "https://alice:***@host/path"),
        ("https://ghp_abcdef@github.com/x.git", "https://***@github.com/x.git"),
        ("http://host:5000/api?token=abc&x=1", "http://host:5000/api?token=***&x=1"),
        ("http://host:5000", "http://host:5000"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("s3a://bucket/path", "s3a://bucket/path"),
    ],
)
def test_uri_credentials_are_hidden(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown


def test_text_loses_known_secrets_in_every_quoted_form_and_uri_passwords() -> None:
    secret = 'ab"c\\d-long'
    text = f"a {secret} b {secret!r} c {json.dumps(secret)} d http://u:pw@h:1/x"
    assert redact_text(text, {secret}) == "a *** b '***' c \"***\" d http://u:***@h:1/x"
    # Values too short to be credentials would blank ordinary words: they are left.
    assert redact_text("500 rows", {"500"}) == "500 rows"


def test_a_mapping_hides_secret_keys_at_any_depth_and_known_values_anywhere() -> None:
    mapping = {
        "spark": {"conf": {"spark.hadoop.fs.s3a.secret.key": "k3y-value", "a.b": "8"}},
        "credentials": {"user": "alice", "list": ["x1", {"n": 2}]},
        "note": "uses k3y-value and http://bob:hunter22@h",
        "n": 3,
    }
    assert redact_mapping(mapping, {"k3y-value"}) == {
        "spark": {"conf": {"spark.hadoop.fs.s3a.secret.key": "***", "a.b": "8"}},
        "credentials": {"user": "***", "list": ["***", {"n": "***"}]},
        "note": "uses *** and http://bob:***@h",
        "n": 3,
    }
    assert secret_values(mapping) == {"k3y-value", "alice", "x1", "2"}


def _config_with_secrets(tmp_path: Path) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(
        f"preset: sparkify\nstorage:\n  root: {tmp_path}/lake\n"
        "spark:\n  conf:\n"
        "    spark.hadoop.fs.s3a.secret.key: ${LAKEML_TEST_TOKEN}\n"
        "    spark.hadoop.fs.s3a.access.key: AKIAFROMTHEFILE\n"
        "    spark.hadoop.fs.s3a.endpoint: ${LAKEML_TEST_ENDPOINT}\n"
        "mlflow:\n  tracking_uri: http://alice:${LAKEML_TEST_TOKEN}@127.0.0.1:9\n"
        "  experiment: exp-${LAKEML_TEST_ENDPOINT}\n"
    )
    return p


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEML_TEST_TOKEN", SECRET)
    monkeypatch.setenv("LAKEML_TEST_ENDPOINT", "minio-1")


def test_values_from_the_environment_and_secret_keys_are_hidden_in_config_yaml(
    tmp_path: Path, secret_env: None
) -> None:
    cfg = load_config(_config_with_secrets(tmp_path))
    # The sections hold the real values...
    assert cfg.spark.conf["spark.hadoop.fs.s3a.secret.key"] == SECRET
    assert cfg.mlflow.tracking_uri == f"http://alice:{SECRET}@127.0.0.1:9"
    # ...the mapping logged to MLflow as config.yaml does not.
    assert cfg.raw["spark"]["conf"] == {
        "spark.hadoop.fs.s3a.secret.key": "***",
        "spark.hadoop.fs.s3a.access.key": "***",
        "spark.hadoop.fs.s3a.endpoint": "***",
    }
    assert cfg.raw["mlflow"] == {
        "tracking_uri": "http://alice:***@127.0.0.1:9",
        "experiment": "exp-***",
    }
    assert cfg.raw["storage"]["root"] == f"{tmp_path}/lake"  # written in the file: shown
    dumped = json.dumps(cfg.raw)
    assert SECRET not in dumped and "AKIAFROMTHEFILE" not in dumped


def test_the_digest_is_of_the_shown_config_so_rotating_a_secret_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret_env: None
) -> None:
    p = _config_with_secrets(tmp_path)
    before = load_config(p).digest()
    monkeypatch.setenv("LAKEML_TEST_TOKEN", "tok-rotated-000000")
    assert load_config(p).digest() == before
    assert load_config(p, ["train.seed=7"]).digest() != before


def test_messages_lose_the_secrets_of_the_config(tmp_path: Path, secret_env: None) -> None:
    cfg = load_config(_config_with_secrets(tmp_path))
    message = f"cannot write to s3a://bucket ({SECRET!r} rejected); AKIAFROMTHEFILE unknown"
    assert cfg.redact(message) == "cannot write to s3a://bucket ('***' rejected); *** unknown"
    assert cfg.redact("minio-1 is down") == "minio-1 is down"  # not secret, only from the env


def test_a_load_error_quotes_no_secret(tmp_path: Path, secret_env: None) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(
        f"preset: sparkify\nstorage:\n  root: {tmp_path}\n"
        "generate:\n  users: ${LAKEML_TEST_TOKEN}\n"
    )
    with pytest.raises(LakemlError) as info:
        load_config(p)
    assert str(info.value) == "config key 'generate.users': must be a whole number (got '***')"


def test_an_unreachable_tracking_server_is_named_without_its_password() -> None:
    with pytest.raises(LakemlError) as info:
        check_reachable("http://alice:s3cretpw@127.0.0.1:9", timeout_seconds=5)
    message = str(info.value)
    assert "MLflow tracking server http://alice:***@127.0.0.1:9 is unreachable" in message
    assert "s3cretpw" not in message
    # Without a port, http.client quotes the URI's parts in its own error: not a traceback.
    with pytest.raises(LakemlError) as info:
        check_reachable("http://alice:s3cretpw@127.0.0.1", timeout_seconds=5)
    assert "s3cretpw" not in str(info.value) and "alice:***@127.0.0.1" in str(info.value)


def test_the_summary_and_progress_lines_lose_the_secrets(tmp_path: Path, secret_env: None) -> None:
    cfg = load_config(_config_with_secrets(tmp_path))
    buffer = io.StringIO()
    report = Report("models", stream=RedactingStream(buffer, cfg.redact))
    report.progress("models", f"MLflow: mlflow ui --backend-store-uri {cfg.mlflow.tracking_uri}")
    report.add(tracking_uri=cfg.mlflow.tracking_uri, key=SECRET)
    report.finish()
    progress, summary = buffer.getvalue().splitlines()
    assert SECRET not in buffer.getvalue()
    assert (
        progress
        == "[lakeml] models: MLflow: mlflow ui --backend-store-uri http://alice:***@127.0.0.1:9"
    )
    parsed = json.loads(summary)
    assert (parsed["tracking_uri"], parsed["key"]) == ("http://alice:***@127.0.0.1:9", "***")


def test_the_cli_prints_errors_and_summaries_without_secrets(
    tmp_path: Path, secret_env: None, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    conf = str(_config_with_secrets(tmp_path))

    def echoes_config(spark: Any, cfg: Config, args: Any, report: Report) -> None:
        # Stands in for a command that echoes config into progress lines and the summary.
        report.progress("models", f"tracking {cfg.mlflow.tracking_uri}")
        report.add(conf=dict(cfg.spark.conf))

    def fails(spark: Any, cfg: Config, args: Any, report: Report) -> None:
        raise LakemlError(f"cannot use {cfg.spark.conf['spark.hadoop.fs.s3a.secret.key']}")

    monkeypatch.setattr(cli, "_models", echoes_config)
    assert cli.main(["models", "--conf", conf]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out and "tracking http://alice:***@127.0.0.1:9" in out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["conf"]["spark.hadoop.fs.s3a.secret.key"] == "***"

    monkeypatch.setattr(cli, "_models", fails)
    assert cli.main(["models", "--conf", conf]) == 2
    assert capsys.readouterr().err == "lakeml models: error: cannot use ***\n"
