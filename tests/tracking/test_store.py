"""A new SQLite tracking store is copied from an empty one MLflow built (`store_template`):
it must be the store MLflow would have created itself, and never replace an existing one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.tracking import MlflowClient

from lakeml.tracking.store import seed_sqlite_store, sqlite_file, store_template


def schema(db: Path) -> dict[tuple[str, str], list[str]]:
    """Each table's and index's definition as its sorted lines: MLflow's own migrations
    write a table's CHECK constraints in varying order from one build to the next."""
    with sqlite3.connect(db) as con:
        found = con.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
    return {
        (kind, name): sorted(line.strip().rstrip(",") for line in (sql or "").splitlines())
        for kind, name, sql in found
    }


def rows(db: Path, table: str) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


def open_store(db: Path, artifacts: Path) -> SqlAlchemyStore:
    return SqlAlchemyStore(f"sqlite:///{db}", str(artifacts))


def test_a_seeded_store_is_the_store_mlflow_creates(tmp_path: Path) -> None:
    seeded, built = tmp_path / "seeded" / "mlflow.db", tmp_path / "built" / "mlflow.db"
    seeded.parent.mkdir()
    built.parent.mkdir()
    assert seed_sqlite_store(seeded, tmp_path / "cache")
    stores = {
        name: open_store(db, tmp_path / name / "artifacts")
        for name, db in (("seeded", seeded), ("built", built))  # `built`: MLflow's own set-up
    }
    assert schema(seeded) == schema(built)
    assert rows(seeded, "alembic_version") == rows(built, "alembic_version")
    assert rows(seeded, "workspaces") == rows(built, "workspaces")
    for name, store in stores.items():
        # MLflow added the Default experiment to each, with that store's artifact folder.
        default = store.get_experiment("0")
        assert default.name == "Default"
        assert default.artifact_location == str(tmp_path / name / "artifacts" / "0")
        assert store.create_experiment("lakeml-churn") == "1"
        store.engine.dispose()
    client = MlflowClient(tracking_uri=f"sqlite:///{seeded}", registry_uri=f"sqlite:///{seeded}")
    client.create_registered_model("lakeml-churn")
    assert [m.name for m in client.search_registered_models()] == ["lakeml-churn"]


def test_an_existing_store_is_never_replaced(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    store = open_store(db, tmp_path / "artifacts")
    store.create_experiment("kept")
    store.engine.dispose()
    before = db.read_bytes()
    assert not seed_sqlite_store(db, tmp_path / "cache")
    assert db.read_bytes() == before
    assert not list(tmp_path.glob(".mlflow.db.*"))  # no partial copy left behind


def test_the_template_is_built_once_and_holds_no_experiment(tmp_path: Path) -> None:
    template = store_template(tmp_path / "cache")
    built_at = template.stat().st_mtime_ns
    assert store_template(tmp_path / "cache") == template
    assert template.stat().st_mtime_ns == built_at
    assert rows(template, "experiments") == []
    assert not (tmp_path / "cache" / "mlflow" / "mlruns").exists()


def test_only_a_sqlite_database_file_is_seeded() -> None:
    assert sqlite_file("sqlite:////data/mlflow/mlflow.db") == Path("/data/mlflow/mlflow.db")
    assert sqlite_file("sqlite:///mlflow.db?timeout=30") == Path("mlflow.db")
    assert sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("http://127.0.0.1:5000") is None
    assert sqlite_file("postgresql://mlflow@db/mlflow") is None
