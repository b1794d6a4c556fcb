"""Bad input of every kind a user can give: each ends in one line naming the problem, exit
status 2, no traceback, and nothing written (or, for bad rows, every row kept or
quarantined with its rule: see test_bad_rows.py).

`KINDS` is the catalogue the README's totals count.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lakeml.cli import main

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.faults


def write(path: Path, content: bytes | str) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


LOCAL = (ROOT / "conf" / "local.yaml").read_text()

# kind -> (argv after `lakeml`, fragments the one error line must hold). `{tmp}` is a fresh
# folder; files the case needs are written by `SETUP`.
KINDS: dict[str, tuple[list[str], list[str]]] = {
    "value out of range": (["pipeline", "--set", "score.risk_bands=0"], ["score.risk_bands"]),
    "unknown key": (["features", "--set", "featurs.windows=[7]"], ["featurs"]),
    "wrong type": (["features", "--set", "generate.users=many"], ["generate.users"]),
    "choice not allowed": (
        ["train", "--set", "train.split.method=shuffle"],
        ["train.split.method"],
    ),
    "cross-field rule": (
        ["train", "--set", "train.split.method=random", "--set", "train.split.test_fraction=0.6"]
        + ["--set", "train.split.validation_fraction=0.5"],
        ["train.split"],
    ),
    "missing config file": (["features", "--conf", "{tmp}/nope.yaml"], ["nope.yaml", "not found"]),
    "config not UTF-8": (["features", "--conf", "{tmp}/latin1.yaml"], ["not UTF-8"]),
    "config not YAML": (["features", "--conf", "{tmp}/broken.yaml"], ["broken.yaml"]),
    "SQL in a column type": (
        ["features", "--conf", "conf/telco.yaml", "--set"]
        + ["source.table.types.gender=STRING) || reflect('java.lang.System','getProperty','x'"],
        ["source.table.types.gender"],
    ),
    "unset environment variable": (
        ["features", "--conf", "{tmp}/env.yaml"],
        ["LAKEML_TEST_UNSET_VARIABLE"],
    ),
    "bad --set syntax": (["features", "--set", "generate.users"], ["generate.users"]),
    "unreachable tracking server": (
        ["train", "--set", "mlflow.tracking_uri=http://127.0.0.1:9"]
        + ["--set", "mlflow.timeout_seconds=2"],
        ["127.0.0.1:9"],
    ),
    "tracking URI with a password": (
        ["train", "--set", "mlflow.tracking_uri=http://alice:hunter2@127.0.0.1:9"]
        + ["--set", "mlflow.timeout_seconds=2"],
        ["alice:***@127.0.0.1:9"],
    ),
    "no gold tables to train on": (["train"], ["no features table", "lakeml features"]),
    "unknown model version to promote": (["promote", "--version", "99"], ["99"]),
}

SETUP = {
    "config not UTF-8": lambda tmp: write(tmp / "latin1.yaml", "# caf\xe9\n".encode("latin-1")),
    "config not YAML": lambda tmp: write(tmp / "broken.yaml", "storage: [root\n"),
    "unset environment variable": lambda tmp: write(
        tmp / "env.yaml",
        LOCAL.replace("app_name: lakeml", "app_name: ${LAKEML_TEST_UNSET_VARIABLE}"),
    ),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    kind: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("LAKEML_TEST_UNSET_VARIABLE", raising=False)
    if kind in SETUP:
        SETUP[kind](tmp_path)
    argv, fragments = KINDS[kind]
    root = tmp_path / "root"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    status = main([*argv, "--set", f"storage.root={root}"])
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err and "hunter2" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"lakeml {argv[0]}: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not (root / "silver").exists() and not (root / "gold").exists()
