"""The Sparkify preset (conf/presets/sparkify.yaml) as the stages take it, for tests that
call a stage directly on eventsim-shaped data."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import types as T

from lakeml.core.config import FeaturesConfig, load_config
from lakeml.features.snapshots import LogColumns

CONF = Path(__file__).resolve().parents[1] / "conf" / "local.yaml"
PRESET = load_config(CONF)
SOURCE = PRESET.source
EVENTS = SOURCE.events
AGGREGATIONS = PRESET.features.aggregations
TARGET = PRESET.features.target
LOG = LogColumns.of(EVENTS, PRESET.features)


def features_config(**values: object) -> FeaturesConfig:
    """A features section with the preset's aggregations and target and `values` on top."""
    return FeaturesConfig(
        **{"aggregations": AGGREGATIONS, "target": TARGET, **values}  # type: ignore[arg-type]
    )


# Silver's own column types, only the columns the Sparkify preset's features read.
SILVER = T.StructType(
    [
        T.StructField("user_id", T.StringType()),
        T.StructField("session_id", T.LongType()),
        T.StructField("item_in_session", T.LongType()),
        T.StructField("ts", T.TimestampType()),
        T.StructField("event_date", T.DateType()),
        T.StructField("page", T.StringType()),
        T.StructField("level", T.StringType()),
        T.StructField("artist", T.StringType()),
        T.StructField("length", T.DoubleType()),
        T.StructField("gender", T.StringType()),
        T.StructField("state", T.StringType()),
        T.StructField("platform", T.StringType()),
        T.StructField("registration", T.TimestampType()),
    ]
)


def update(spark, cfg, paths, full_refresh=False):  # noqa: ANN001, ANN201
    """gold.update over the preset's entity and event-type columns."""
    from lakeml.features import gold

    return gold.update(spark, cfg, paths, LOG, full_refresh)
