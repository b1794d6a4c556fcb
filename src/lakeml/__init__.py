"""lakeml: churn features, models and batch scores on Spark, Delta Lake and MLflow."""

__version__ = "0.1.0"
