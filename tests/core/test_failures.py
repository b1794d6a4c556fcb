"""Failures as users cause them, each described in one line by `lakeml.core.failures`: real
exceptions from the suite's SparkSession (a lost data file, a damaged Delta log entry, files
that are not Parquet, a folder that cannot be written), the texts other stores give for a
denied permission, and anything else as an internal error with its log file."""

from __future__ import annotations

import glob
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeml.core import storage
from lakeml.core.failures import INTERNAL, USER, Failure, describe, write_log

FIX_PERMISSION = (
    "give the user running lakeml access to it, or point storage.root (or --input) elsewhere"
)
REBUILD_ANY = "move the table's folder aside and rerun the step that writes it"
REBUILD_GOLD = "run `lakeml features --full-refresh` to rebuild it from silver"


def raised(action: Callable[[], object]) -> BaseException:
    with pytest.raises(Exception) as info:
        action()
    return info.value


def write_table(spark: SparkSession, path: Path, versions: int = 1) -> str:
    """Six rows partitioned by p (0, 1), written `versions` times (appended after the first)."""
    df = spark.range(6).select(F.col("id").alias("k"), (F.col("id") % 2).alias("p"))
    storage.rebuild(df, str(path), ["p"])
    for _ in range(versions - 1):
        storage.append(df, str(path), ["p"])
    return str(path)


def read_all(spark: SparkSession, path: str) -> Callable[[], object]:
    return lambda: storage.read(spark, path).collect()


def test_a_deleted_data_file_names_the_configured_table_and_how_to_rebuild_it(
    spark: SparkSession, tmp_path: Path
) -> None:
    path = write_table(spark, tmp_path / "gold" / "user_features")
    lost = sorted(glob.glob(f"{path}/p=1/*.parquet"))[0]
    os.remove(lost)
    tables = {"features": path, "scores": str(tmp_path / "gold" / "churn_scores")}
    assert describe(raised(read_all(spark, path)), tables) == Failure(
        f"a data file of the features table at {path} is missing ({os.path.basename(lost)}); "
        f"restore it from a backup, or {REBUILD_GOLD}",
        USER,
    )


def test_a_deleted_data_file_of_a_table_not_in_the_config_names_its_folder(
    spark: SparkSession, tmp_path: Path
) -> None:
    path = write_table(spark, tmp_path / "exports")
    lost = sorted(glob.glob(f"{path}/p=0/*.parquet"))[0]
    os.remove(lost)
    # The folder above the partition folder p=0 is the table's.
    assert describe(raised(read_all(spark, path)), {}) == Failure(
        f"a data file of the Delta table at {path} is missing ({os.path.basename(lost)}); "
        f"restore it from a backup, or {REBUILD_ANY}",
        USER,
    )


@pytest.mark.parametrize(
    ("damage", "entry", "said"),
    [
        ("cut off", 1, "is not valid JSON"),
        ("edited", 1, "does not match its .crc checksum"),
        ("deleted", 0, "is missing"),
    ],
)
def test_a_damaged_delta_log_entry_names_the_table_and_the_entry(
    spark: SparkSession, tmp_path: Path, damage: str, entry: int, said: str
) -> None:
    path = write_table(spark, tmp_path / "scores", versions=2)
    log = Path(path) / "_delta_log"
    name = f"{entry:020d}.json"
    if damage == "deleted":
        (log / name).unlink()
    else:
        text = (log / name).read_text()
        (log / name).write_text(text[: len(text) // 2] if damage == "cut off" else "{}" + text)
        if damage == "cut off":  # a bare copy of the file comes without its checksum
            (log / f".{name}.crc").unlink()
    assert describe(raised(read_all(spark, path)), {"scores": path}) == Failure(
        f"the Delta log of the scores table at {path} is damaged ({name} {said}); restore that "
        f"file from a backup, or {REBUILD_ANY}",
        USER,
    )


def test_a_folder_of_files_that_are_not_parquet_is_not_a_table(
    spark: SparkSession, tmp_path: Path
) -> None:
    (tmp_path / "users.csv").write_text("user_id,songs\nu1,3\n")
    exc = raised(lambda: spark.read.parquet(str(tmp_path)))
    assert describe(exc, {}) == Failure(
        f"{tmp_path} is neither a Delta nor a Parquet table (users.csv is not a Parquet "
        "file); point the command at one",
        USER,
    )


@pytest.fixture
def lock(tmp_path: Path) -> Iterator[Callable[[Path], None]]:
    """Make a folder one nobody can create files in, root included (ext4's immutable
    attribute), until the test ends."""
    locked: list[Path] = []

    def make(folder: Path) -> None:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
            pytest.skip("chattr +i is not available here")
        locked.append(folder)

    yield make
    for folder in locked:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_table_that_cannot_be_written_is_a_permission_error(
    spark: SparkSession, tmp_path: Path, lock: Callable[[Path], None]
) -> None:
    path = write_table(spark, tmp_path / "scores")
    lock(Path(path) / "p=0")
    rows = spark.range(2).select(F.col("id").alias("k"), F.lit(0).cast("long").alias("p"))
    exc = raised(lambda: storage.append(rows, path, ["p"]))
    failure = describe(exc, {})
    assert failure.status == USER
    assert failure.message.startswith(f"permission denied on {path}/p=0/part-")
    assert failure.message.endswith(f".parquet; {FIX_PERMISSION}")


def test_a_new_table_in_a_folder_that_cannot_be_written_is_a_permission_error(
    spark: SparkSession, tmp_path: Path, lock: Callable[[Path], None]
) -> None:
    lock(tmp_path)
    exc = raised(lambda: storage.append(spark.range(3), str(tmp_path / "t")))
    assert describe(exc, {}) == Failure(
        f"cannot create {tmp_path}/t/_delta_log (no permission, or a read-only file system); "
        f"{FIX_PERMISSION}",
        USER,
    )


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (
            "java.nio.file.AccessDeniedException: s3a://lake/gold/user_features/_delta_log: "
            "getFileStatus on s3a://lake/gold/user_features/_delta_log: com.amazonaws.services."
            "s3.model.AmazonS3Exception: Forbidden (Service: Amazon S3; Status Code: 403)",
            "s3a://lake/gold/user_features/_delta_log",
        ),
        (
            "org.apache.hadoop.security.AccessControlException: Permission denied: user=alice, "
            'access=READ_EXECUTE, inode="/lake/gold/user_features":hdfs:supergroup:drwx------',
            "/lake/gold/user_features",
        ),
        ("java.nio.file.AccessDeniedException: /data/raw: Permission denied", "/data/raw"),
    ],
)
def test_permission_errors_of_other_stores_name_the_path(text: str, path: str) -> None:
    assert describe(RuntimeError(text), {}) == Failure(
        f"permission denied on {path}; {FIX_PERMISSION}", USER
    )


def test_anything_else_is_an_internal_error_naming_its_log(spark: SparkSession) -> None:
    exc = raised(lambda: spark.sparkContext._jvm.java.lang.Class.forName("no.such.Klass"))
    # The first line of a Py4JJavaError only names the call; the Java exception says more.
    assert describe(exc, {}, log="/var/log/x.log") == Failure(
        "internal error: Py4JJavaError: java.lang.ClassNotFoundException: no.such.Klass "
        "(full traceback in /var/log/x.log)",
        INTERNAL,
        "/var/log/x.log",
    )
    assert describe(ValueError("bad\nsecond line"), {}) == Failure(
        "internal error: ValueError: bad", INTERNAL
    )


def boom() -> RuntimeError:
    try:
        raise RuntimeError("the password is hunter2")
    except RuntimeError as exc:
        return exc


def test_the_log_holds_the_traceback_redacted_under_the_storage_root(tmp_path: Path) -> None:
    path = write_log(boom(), "score", str(tmp_path), lambda t: t.replace("hunter2", "***"))
    assert path is not None
    assert Path(path).parent == tmp_path / "logs"
    assert Path(path).name.startswith("lakeml-score-")
    text = Path(path).read_text()
    assert "Traceback (most recent call last)" in text
    assert 'raise RuntimeError("the password is' in text
    assert "RuntimeError: the password is ***" in text
    assert "hunter2" not in text


def test_the_log_goes_to_the_temp_folder_when_the_root_cannot_hold_it(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "root"
    not_a_folder.write_text("a file where the root should be")
    path = write_log(boom(), "train", str(not_a_folder))
    assert path is not None
    assert Path(path).parent == Path(tempfile.gettempdir())
    assert "RuntimeError: the password is hunter2" in Path(path).read_text()
    os.remove(path)
    # A remote root keeps no log: it goes to the temp folder too.
    remote = write_log(boom(), "train", "s3a://bucket/lake")
    assert remote is not None and Path(remote).parent == Path(tempfile.gettempdir())
    os.remove(remote)
