from __future__ import annotations

from collections.abc import Iterator

import pytest
from pyspark.sql import SparkSession

from lakeml.core.config import SparkConfig
from lakeml.core.session import get_spark


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """One small local SparkSession with Delta for the whole suite."""
    session = get_spark(
        SparkConfig(
            master="local[2]",
            app_name="lakeml-tests",
            log_level="ERROR",
            conf={
                "spark.sql.shuffle.partitions": "2",
                "spark.default.parallelism": "2",
                "spark.ui.enabled": "false",
                "spark.sql.adaptive.enabled": "false",
                "spark.databricks.delta.snapshotPartitions": "1",
            },
        )
    )
    yield session
    session.stop()
