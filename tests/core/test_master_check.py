"""The standalone-master check that runs before a session is created (no Spark needed)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from lakeml.core.errors import LakemlError
from lakeml.core.session import check_master_reachable, master_addresses


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_standalone_url_lists_every_master_address() -> None:
    assert master_addresses("spark://10.0.0.5:7077") == [("10.0.0.5", 7077)]
    # Standby masters: a comma-separated list after one spark:// prefix.
    assert master_addresses("spark://a:7077,b:7078") == [("a", 7077), ("b", 7078)]


@pytest.mark.parametrize("master", ["local[2]", "local[*]", "yarn", "k8s://https://k8s:6443"])
def test_other_masters_are_not_checked(master: str) -> None:
    assert master_addresses(master) == []
    check_master_reachable(master)


@pytest.mark.parametrize("master", ["spark://host", "spark://:7077", "spark://host:port"])
def test_standalone_url_without_a_port_is_a_clear_error(master: str) -> None:
    with pytest.raises(LakemlError, match="malformed; write spark://host:port"):
        master_addresses(master)


def test_a_listening_standby_master_is_enough(closed_port: int, listening_port: int) -> None:
    check_master_reachable(f"spark://127.0.0.1:{closed_port},127.0.0.1:{listening_port}")


def test_no_listening_master_names_the_url_and_the_fix(closed_port: int) -> None:
    master = f"spark://127.0.0.1:{closed_port}"
    with pytest.raises(LakemlError) as info:
        check_master_reachable(master, timeout_seconds=2)
    message = str(info.value)
    assert f"Spark master {master} is unreachable" in message
    assert "refused" in message
    assert "spark-submit --master" in message
    assert "\n" not in message
