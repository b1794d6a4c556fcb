"""Quiet logs at their source: the driver JVM's log4j2 config and the chatty Python loggers.

A run should show lakeml's own lines and real warnings, not Spark's start-up banner, the
netlib probe or MLflow's INFO lines about SQLite tables and DFS copies.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from pathlib import Path

# Shipped with the package (setup.py package_data); its levels come from system properties.
LOG4J2_PROPERTIES = Path(__file__).with_name("log4j2.properties")

# INFO lines: "Creating initial MLflow database tables..." (mlflow.store.db.utils) with a new
# SQLite store, alembic's migration lines ("Context impl SQLiteImpl.") and "URI ... does not
# point to the current DFS." on each Spark-flavor model load (mlflow.spark).
# xgboost.spark logs its parameters and each fit's and prediction's start at INFO, on the
# driver and (its level passed along) in the Python workers.
CHATTY_PYTHON_LOGGERS = (
    "mlflow.spark",
    "mlflow.store.db.utils",
    "alembic",
    "XGBoost-PySpark",
    "SparkXGBClassifier",
    "SparkXGBClassifierModel",
)

# "WARNING: Using incubator modules: jdk.incubator.vector" is the JVM's own first line on
# stderr: Spark's launcher gives every driver --add-modules=jdk.incubator.vector
# (JavaModuleOptions, unconditionally), and Java has no option that silences the warning. A
# driver lakeml launches itself writes its stderr through this filter, a small process that
# drops the line from the first few and then copies everything else on, byte for byte, until
# the JVM and its children close their stderr.
INCUBATOR_WARNING = "WARNING: Using incubator modules:"
STDERR_FILTER = r"""
import os, sys

def write(data):
    while data:
        data = data[os.write(1, data):]

prefix, head = sys.argv[1].encode(), b""
for _ in range(8):
    while b"\n" not in head and len(head) < 65536:
        chunk = os.read(0, 65536)
        if not chunk:
            break
        head += chunk
    line, newline, rest = head.partition(b"\n")
    if not newline:
        break
    head = rest
    if line.startswith(prefix):
        break
    write(line + newline)
while True:
    write(head)
    head = os.read(0, 65536)
    if not head:
        break
"""


# netlib-java (dev.ludovic.netlib, in Spark ML) loads its JNI shim, whose JNI_OnLoad dlopen()s
# the system library below and, when that fails, prints "netlib-<lib>: JNI_OnLoad: dlopen(...)
# failed" straight to stderr from C, past any log4j setting. Only Linux's defaults can be
# missing (macOS's point at the Accelerate framework, except ARPACK's).
NETLIB_DEFAULT_LIBRARIES = {
    "linux": {"blas": "libblas.so.3", "lapack": "liblapack.so.3", "arpack": "libarpack.so.2"},
    "darwin": {"arpack": "/usr/local/lib/libarpack.dylib"},
}


def quiet_python_loggers() -> None:
    """Raise the chatty MLflow and Alembic loggers to WARNING, unless something already set
    a level on them (a user's logging config wins). Works before mlflow is imported."""
    for name in CHATTY_PYTHON_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


def loadable(library: str) -> bool:
    """True when the dynamic linker finds `library`, the same dlopen() the JNI shim makes."""
    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


def netlib_java_options(platform: str = sys.platform) -> list[str]:
    """`-D` options that keep netlib from probing native libraries this machine lacks.

    Spark then uses netlib's pure-Java implementations, as it does after a failed probe; a
    machine with OpenBLAS/LAPACK installed keeps them.
    """
    defaults = NETLIB_DEFAULT_LIBRARIES.get("linux" if platform.startswith("linux") else platform)
    return [
        f"-Ddev.ludovic.netlib.{name}.allowNative=false"
        for name, library in (defaults or {}).items()
        if not loadable(library)
    ]


def has_own_log4j_config() -> bool:
    """True when the Spark conf folder holds a log4j2 config, which then wins over lakeml's."""
    folder = os.environ.get("SPARK_CONF_DIR") or (
        os.path.join(os.environ["SPARK_HOME"], "conf") if os.environ.get("SPARK_HOME") else None
    )
    names = ("log4j2.properties", "log4j2.xml", "log4j2.yaml", "log4j2.yml", "log4j2.json")
    return folder is not None and any(os.path.isfile(os.path.join(folder, n)) for n in names)


def driver_java_options(log_level: str) -> str:
    """JVM options for a driver lakeml launches: lakeml's log4j2 config at `log_level` (unless
    the Spark conf folder has one), no netlib probe of missing native libraries."""
    options = netlib_java_options()
    if not has_own_log4j_config():
        config = f"-Dlog4j2.configurationFile={LOG4J2_PROPERTIES.as_uri()}"
        options = [config, f"-Dlakeml.log.level={log_level}", *options]
    return " ".join(options)
