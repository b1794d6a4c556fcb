"""Fail fast on a Spark standalone master that is not there.

Spark's standalone client retries registering with the master three times, 20 s apart
(fixed in `StandaloneAppClient`, no setting changes it), and then fails with an unrelated
"stopped SparkContext" error. A plain TCP connect to the master's port answers the same
question in a few seconds, before any session exists.
"""

from __future__ import annotations

import socket

from lakeml.errors import LakemlError

# Per master address; a live master on the same network accepts a connection in milliseconds.
CONNECT_TIMEOUT_SECONDS = 5.0


def master_addresses(master: str) -> list[tuple[str, int]]:
    """(host, port) pairs of a standalone master URL, `spark://h:p` or `spark://h1:p1,h2:p2`
    (standby masters); an empty list for every other master (local, yarn, k8s://...)."""
    if not master.startswith("spark://"):
        return []
    addresses = []
    for part in master.removeprefix("spark://").split(","):
        host, sep, port = part.strip().rstrip("/").rpartition(":")
        if not sep or not host or not port.isdigit():
            raise LakemlError(
                f"Spark master URL {master!r} is malformed; write spark://host:port "
                "(e.g. spark://10.0.0.5:7077)"
            )
        addresses.append((host.strip("[]"), int(port)))
    return addresses


def check_master_reachable(master: str, timeout_seconds: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """Raise `LakemlError` unless some address of a `spark://` master accepts a TCP connection.

    Takes at most `timeout_seconds` per address; other masters are not checked.
    """
    failures = []
    for host, port in master_addresses(master):
        try:
            with socket.create_connection((host, port), timeout=timeout_seconds):
                return
        except OSError as exc:
            failures.append(f"{host}:{port}: {exc.strerror or exc}")
    if failures:
        raise LakemlError(
            f"Spark master {master} is unreachable ({'; '.join(failures)}); start the master "
            "or fix the URL given to spark-submit --master or spark.master (SPARK_MASTER_URL)"
        )


def submitted_master() -> str:
    """The master spark-submit was given (it lives in the driver JVM's conf, which exists
    before any session under spark-submit)."""
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()
    return SparkConf().get("spark.master", "")
