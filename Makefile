# lakeml: `make install` sets everything up; `make run` and `make test` install first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# uv installs the pinned packages into both venvs: in parallel, from one shared cache (on a
# fresh clone here, 32-40 s against pip's 83 s for .venv and 7 s against 47 s for Airflow's).
# --compile-bytecode writes the .pyc files once, as pip does: uv leaves them out, and where
# PYTHONDONTWRITEBYTECODE is set (this machine) no import writes them either, so every new
# process compiled mlflow, pandas, pyspark and the rest again (7.7 s against 3.0 s to import).
UV := $(VENV)/bin/uv
UV_INSTALL := $(UV) pip install -q --compile-bytecode
# uv keeps every build of pyspark's source distribution (it ships no wheel): each install
# here added two builds, 1.2 GB each, to ~/.cache/uv, and a full disk once failed CI's install
# (2026-12-06, 60 GB in the cache). Pruning after each install keeps the one in use.
UV_PRUNE := $(UV) cache prune -q
# Airflow in a venv of its own: its many pins never meet lakeml's.
AIRFLOW_VENV := .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed
CONF ?= conf/local.yaml
# pytest-xdist workers for the suites (tests/conftest.py says what each worker gets).
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help install run test slow-test long-test lint format bench clean java browser package cluster-test fault-test dag-test

help: ## show this help
	@echo "lakeml make targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

java: ## check that Java 17+ is installed (Spark 4 needs it)
	@v=$$(java -version 2>&1 | awk -F'"' '/version/ {print $$2}' | cut -d. -f1); \
	if [ -z "$$v" ] || [ "$$v" -lt 17 ]; then \
	  echo "Java 17 or newer is needed (found: $${v:-none}). Install it, e.g.:"; \
	  echo "  Debian/Ubuntu: sudo apt-get install openjdk-17-jre-headless"; \
	  echo "  macOS: brew install openjdk@17   (then set JAVA_HOME)"; \
	  exit 1; fi

# `make test` runs this before its suite, as it creates the venv before: set-up, not test time
# (the first browser test took 32.6 s with apt-get inside it, under 7 s without, 2026-12-05).
# Without root it prints how to install and the browser tests skip; a pytest run outside make
# installs it the same way (tests/browser.py: ensure_chromium).
browser: ## install Chromium from Debian's packages for the report tests, if absent
	@if command -v chromium >/dev/null 2>&1; then echo "chromium: $$(command -v chromium)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else echo "Chromium is missing: sudo apt-get install chromium (Debian/Ubuntu), or sudo make browser"; \
	  exit 1; fi

$(STAMP): setup.py constraints.txt
	@$(MAKE) --no-print-directory java
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt uv
	$(UV_INSTALL) --python $(PY) -c constraints.txt -e '.[dev]'
	$(UV_PRUNE)
	@echo "resolving the Delta jars from Maven Central (once), building the driver class archive"
	$(PY) -m lakeml.install --conf $(CONF)
	touch $(STAMP)

install: $(STAMP) ## create .venv with pinned versions and fetch the Delta jars once

UNTIL ?= score
run: $(STAMP) ## the whole journey: generate (if absent) -> features -> train -> gate -> score (UNTIL=features|train stops early)
	$(VENV)/bin/lakeml pipeline --conf $(CONF) --until $(UNTIL)

test: $(STAMP) ## the test suite: unit and end-to-end tests, in-process, in two workers with a SparkSession each
	@$(MAKE) --no-print-directory browser || echo "the browser tests will skip"
	$(VENV)/bin/pytest -q tests --ignore=tests/cluster -m "not crash and not slow" -n $(TEST_WORKERS) --durations=30

slow-test: $(STAMP) ## whole pipelines run twice, weeks of data apart (CI: in make long-test)
	$(VENV)/bin/pytest -q tests --ignore=tests/cluster -m slow --durations=5

fault-test: $(STAMP) ## real lakeml processes killed at each point and rerun (CI: in make long-test)
	$(VENV)/bin/pytest -q tests --ignore=tests/cluster -m crash --durations=10

long-test: $(STAMP) ## slow-test and fault-test together, in two workers (what CI runs after make test)
	$(VENV)/bin/pytest -q tests --ignore=tests/cluster -m "slow or crash" -n $(TEST_WORKERS) --durations=10

package: $(STAMP) dist/lakeml.zip ## build dist/lakeml-<version>-py3-none-any.whl and dist/lakeml.zip (--py-files)
	rm -f dist/lakeml-*.whl
	$(PY) -m pip wheel -q --no-deps -w dist .

# The lakeml package alone, zipped for spark-submit --py-files (jobs/*.py are the main files).
# Rebuilt when a source file changes, or one is added or removed (the folder's time changes).
dist/lakeml.zip: $(STAMP) src/lakeml $(shell find src/lakeml -type f -not -path '*__pycache__*')
	@mkdir -p dist
	$(PY) -c 'import pathlib, zipfile; files = sorted(p for p in pathlib.Path("src/lakeml").rglob("*") if p.is_file() and "__pycache__" not in p.parts); z = zipfile.ZipFile("$@", "w", zipfile.ZIP_DEFLATED); [z.write(p, p.relative_to("src")) for p in files]; z.close()'

cluster-test: package ## the real standalone cluster + MLflow server tests (CI runs them beside make long-test)
	$(VENV)/bin/pytest -q tests/cluster --durations=5

$(AIRFLOW_STAMP): orchestration/requirements.txt orchestration/constraints.txt | $(STAMP)
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(UV_INSTALL) --python $(AIRFLOW_VENV)/bin/python -c orchestration/constraints.txt -r orchestration/requirements.txt
	$(UV_PRUNE)
	touch $(AIRFLOW_STAMP)

dag-test: $(STAMP) dist/lakeml.zip $(AIRFLOW_STAMP) ## the Airflow DAG (orchestration/) in its own .venv-airflow: imports, order, a real features task run
	$(AIRFLOW_VENV)/bin/python -m pytest -q orchestration/test_dag.py --durations=5

bench: $(STAMP) ## benchmarks: feature job and scoring as ratios over a plain Spark copy; ingest steps and the table command's JIT; xgboost vs Spark GBT; the prediction service under load
	$(PY) bench/feature_bench.py $(CONF)
	$(PY) bench/feature_bench.py $(CONF) --scale 10
	$(PY) bench/ingest_bench.py --conf $(CONF)
	$(PY) bench/score_bench.py $(CONF)
	$(PY) bench/xgboost_bench.py $(CONF)
	$(PY) bench/serve_bench.py

lint: $(STAMP) ## ruff lint and format check
	$(VENV)/bin/ruff check src jobs tests bench orchestration
	$(VENV)/bin/ruff format --check src jobs tests bench orchestration

format: $(STAMP) ## ruff format and autofix
	$(VENV)/bin/ruff format src jobs tests
	$(VENV)/bin/ruff check --fix src jobs tests

clean: ## remove the default storage root and build outputs (keeps .venv)
	rm -rf lakeml-data build dist src/*.egg-info spark-warehouse
