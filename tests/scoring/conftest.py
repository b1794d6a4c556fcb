from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from scoring_lake import Lake, build_lake


@pytest.fixture(scope="session")
def lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """One lake (features, two registered models) for every scoring test module."""
    return build_lake(spark, tmp_path_factory.mktemp("lake"))
