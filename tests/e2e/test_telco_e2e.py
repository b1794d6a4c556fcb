"""A customer snapshot table trained and scored by configuration alone (conf/telco.yaml)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from lakeml.cli import main
from lakeml.core import storage
from lakeml.core.config import load_config

CONF = Path(__file__).resolve().parents[2] / "conf" / "telco.yaml"
HEADER = [
    "customerID",
    "gender",
    "SeniorCitizen",
    "Partner",
    "Dependents",
    "tenure",
    "PhoneService",
    "MultipleLines",
    "InternetService",
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
    "Contract",
    "PaperlessBilling",
    "PaymentMethod",
    "MonthlyCharges",
    "TotalCharges",
    "Churn",
]
CUSTOMERS = 800
# The wiring, not the grid: one logistic regression and a short GBT (conf/telco.yaml's grid
# is the user's; the model types themselves are tested in tests/training).
MODELS = (
    "train.models=[{type: logistic_regression, grid: {regParam: [0.01]}}, "
    "{type: gbt, grid: {maxIter: [8], maxDepth: [3]}}]"
)
ONE_MODEL = "train.models=[{type: logistic_regression, grid: {regParam: [0.01]}}]"

pytestmark = [pytest.mark.e2e]


def telco_csv(path: Path, signal: bool = True) -> None:
    """Rows shaped like the IBM Telco CSV; month-to-month contracts and short tenure churn
    (`signal=False`: churn at random, 27% of customers, whatever their columns say)."""
    rnd = random.Random(3)
    yes_no = ["Yes", "No"]
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for i in range(CUSTOMERS):
            contract = rnd.choice(["Month-to-month", "One year", "Two year"])
            tenure = rnd.randint(0, 72)
            monthly = round(rnd.uniform(18, 118), 2)
            risk = (0.45 if contract == "Month-to-month" else 0.05) + (0.25 if tenure < 12 else 0)
            risk = risk if signal else 0.27
            out.writerow(
                [
                    f"{i:04d}-CUST",
                    rnd.choice(["Male", "Female"]),
                    rnd.choice([0, 1]),
                    *[rnd.choice(yes_no) for _ in range(2)],
                    tenure,
                    "Yes",
                    rnd.choice(["Yes", "No"]),
                    rnd.choice(["DSL", "Fiber optic", "No"]),
                    *[rnd.choice(yes_no) for _ in range(6)],
                    contract,
                    rnd.choice(yes_no),
                    rnd.choice(["Electronic check", "Mailed check", "Credit card (automatic)"]),
                    monthly,
                    # A new customer's total is blank in the real file: missing, not an error.
                    "" if tenure == 0 else round(monthly * tenure, 2),
                    "Yes" if rnd.random() < risk else "No",
                ]
            )


def test_a_customer_table_trains_registers_and_scores_by_configuration(
    spark: SparkSession, tmp_path: Path, capsys, monkeypatch
) -> None:
    source = tmp_path / "telco.csv"
    telco_csv(source)
    # A secret from the environment, as a user puts an object store key in the config: it
    # must not reach any output or any file under the storage root (MLflow's included).
    secret = "s3cr3t-" + "".join(random.Random().choices("abcdefghijk", k=24))
    monkeypatch.setenv("LAKEML_TEST_SECRET", secret)
    conf = tmp_path / "telco.yaml"
    ui = '    spark.ui.enabled: "false"'
    text = CONF.read_text()
    assert ui in text
    key = '\n    spark.hadoop.fs.s3a.secret.key: "${LAKEML_TEST_SECRET}"'
    conf.write_text(text.replace(ui, ui + key))
    root = tmp_path / "root"
    sets = ["--set", f"storage.root={root}", "--set", f"source.path={source}", "--set", MODELS]
    assert main(["pipeline", "--conf", str(conf), *sets]) == 0
    out = capsys.readouterr()
    summary = json.loads(out.out.strip().splitlines()[-1])
    # The summary for people speaks of rows, not events, for a customer table.
    assert f"  silver rows: {CUSTOMERS}, quarantined: 0" in out.out.splitlines()
    cfg = load_config(conf, [f"storage.root={root}", f"source.path={source}"])
    assert cfg.spark.conf["spark.hadoop.fs.s3a.secret.key"] == secret  # the run had it
    assert secret not in out.out + out.err
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "config.yaml" for p in files)  # the logged config is searched too
    assert [p for p in files if secret.encode() in p.read_bytes()] == []

    train = summary["train"]
    rows = train["rows"]
    assert sum(rows.values()) == CUSTOMERS
    # 20% test and 20% validation of 800 customers by hash: each within 3 sd (0.042) of it.
    assert abs(rows["test"] / CUSTOMERS - 0.2) < 0.05
    assert abs(rows["validation"] / CUSTOMERS - 0.2) < 0.05
    # The contract and tenure signal is learnt well above chance.
    assert train["champion"]["model_uri"] == "models:/lakeml-telco-churn@champion"
    assert train["champion"]["version"] == 1
    assert train["champion"]["test"]["roc_auc"] > 0.7

    scores = storage.read(spark, cfg.table("scores"))
    assert scores.count() == CUSTOMERS
    assert scores.select("customerID").distinct().count() == CUSTOMERS


def test_with_no_version_through_the_gate_the_pipeline_skips_scoring_with_status_3(
    spark: SparkSession, tmp_path: Path, capsys
) -> None:
    source = tmp_path / "telco.csv"
    telco_csv(source, signal=False)
    root = tmp_path / "root"
    sets = [f"storage.root={root}", f"source.path={source}"]
    args = [a for kv in [*sets, ONE_MODEL] for a in ("--set", kv)]
    assert main(["pipeline", "--conf", str(CONF), *args]) == 3
    out = capsys.readouterr()
    summary = json.loads(out.out.strip().splitlines()[-1])
    assert summary["ok"] is True and summary["exit_status"] == 3
    assert summary["train"]["gate"]["decision"] == "rejected"
    assert summary["train"]["champion"]["version"] is None
    skipped = [line for line in out.out.splitlines() if line.startswith("[lakeml] score: skipped")]
    assert skipped == [
        "[lakeml] score: skipped: no champion: no version of lakeml-telco-churn has passed the "
        "gate, so there is nothing to score with (exit status 3)"
    ]
    assert out.err == ""
    assert not (Path(load_config(CONF, sets).table("scores")) / "_delta_log").exists()
