from pathlib import Path

from setuptools import find_packages, setup

README = Path(__file__).with_name("README.md")

setup(
    name="lakeml",
    version="0.1.0",
    description="Churn features, models and batch scores on Spark, Delta Lake and MLflow",
    long_description=README.read_text(encoding="utf-8") if README.exists() else "",
    long_description_content_type="text/markdown",
    package_dir={"": "src"},
    packages=find_packages("src"),
    # The driver's log4j2 config (lakeml.core.logs) ships inside the package.
    package_data={"lakeml.core": ["log4j2.properties"], "lakeml": ["presets/*.yaml"]},
    python_requires=">=3.10",
    install_requires=[
        "pyspark>=4.2,<4.3",
        "delta-spark>=4.4,<4.5",
        "mlflow>=3.10,<4",
        "pandas>=2.2,<3",
        "numpy>=1.26",
        "pyarrow>=18",
        "scikit-learn>=1.5,<2",
        "matplotlib>=3.8,<4",
        "PyYAML>=6",
        # Config sections are pydantic v2 models, validated at load (lakeml.core.config).
        "pydantic>=2.7,<3",
        # The scikit-learn baseline is logged in skops format (safer than pickle).
        "skops>=0.10",
        # delta-rs reads a Delta log without a JVM: row counts and versions for summaries,
        # and training's checks before Spark starts (lakeml.core.delta_log).
        "deltalake>=1.0",
        # Model type xgboost: xgboost's own Spark estimator (xgboost.spark). The -cpu wheel,
        # not `xgboost`, which pulls a 350 MB NCCL package; 3.3+ needs Python 3.12.
        "xgboost-cpu>=3.2,<3.3",
        # `lakeml serve`: the HTTP service (routes, request validation, OpenAPI docs) and
        # the ASGI server that runs it; both come with mlflow already, declared as used.
        "fastapi>=0.115",
        "uvicorn>=0.30",
        # uvicorn's fast HTTP parser and event loop (picked up when installed): with them
        # the service answered 4,822 lookups/s instead of 2,744 (bench/serve_bench.py).
        "httptools>=0.6",
        "uvloop>=0.19",
    ],
    # aiohttp: the load generator of bench/serve_bench.py (installed with mlflow too);
    # pytest-xdist: `make test` runs the suite in two workers.
    extras_require={
        "dev": ["chispa>=0.11", "pytest>=8", "pytest-xdist>=3.6", "ruff>=0.6", "aiohttp>=3.9"]
    },
    entry_points={"console_scripts": ["lakeml=lakeml.cli:entrypoint"]},
)
