"""The stakeholder report of the xgboost lake: every number it shows, read back from the HTML by
its `data-key`, equals the MLflow metric, artifact or Delta value it names (read here with
MLflow's client and delta-rs, not with the report's own code); the Markdown variant; bad
business assumptions are config errors."""

from __future__ import annotations

import io
import math
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable
from mlflow.tracking import MlflowClient

from lakeml.core.config import load_config
from lakeml.core.errors import LakemlError
from lakeml.core.report import Report
from lakeml.pipeline import run_report

CONF = Path(__file__).resolve().parents[2] / "conf" / "local.yaml"


class Numbers(HTMLParser):
    """(data-key, text) of every element carrying a data-key."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []
        self._key: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._key = dict(attrs).get("data-key")

    def handle_data(self, data: str) -> None:
        if self._key is not None:
            self.found.append((self._key, data))
            self._key = None


def shown(text: str) -> tuple[float, float]:
    """The number a cell shows and half a unit of its last digit (what rounding may hide)."""
    clean = text.replace(",", "").replace("USD", "").strip()
    percent = clean.endswith("%")
    clean = clean.rstrip("%")
    decimals = len(clean.split(".")[1]) if "." in clean else 0
    scale = 100 if percent else 1
    return float(clean) / scale, 0.5 * 10**-decimals / scale + 1e-12


@pytest.fixture(scope="module")
def reported(spark, xgboost_lake):
    cfg = xgboost_lake["cfg"]
    out = run_report(spark, cfg, Report("report", stream=io.StringIO()))
    return cfg, out, Path(out["path"]).read_text()


def sources(cfg, html_text: str) -> dict:
    client = MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri)
    mv = client.get_model_version_by_alias(cfg.mlflow.registered_model, "champion")
    run = client.get_run(mv.run_id)
    parent = client.get_run(run.data.tags["mlflow.parentRunId"]).data.metrics
    csv = {n: pd.read_csv(client.download_artifacts(mv.run_id, f"{n}.csv"))
           for n in ("deciles", "calibration", "drivers")}  # fmt: skip
    scores = DeltaTable(cfg.table("scores")).to_pandas()
    scores = scores[scores.model_version == int(mv.version)]
    snapshot = scores.snapshot_date.max()
    scores = scores[scores.snapshot_date == snapshot]
    return dict(client=client, mv=mv, metrics=run.data.metrics, parent=parent, csv=csv,
                scores=scores, snapshot=snapshot)  # fmt: skip


def expected(key: str, s: dict, cfg) -> float:
    kind, _, rest = key.partition(":")
    r = cfg.report
    m, d = s["metrics"], s["csv"]["deciles"].sort_values("decile")
    precision = m[f"test_precision_at_{r.budget_pct:g}pct"]
    contacts = math.ceil(len(s["scores"]) * r.budget_pct / 100)
    saved = contacts * precision * r.save_rate
    derived = {
        "contacts": contacts,
        "expected_churners": contacts * precision,
        "expected_saved": saved,
        "value": saved * r.value_per_retained,
        "cost": contacts * r.cost_per_contact,
        "net": saved * r.value_per_retained - contacts * r.cost_per_contact,
    }
    if kind == "derived" and rest == "best_net":
        nets = []
        for k in range(1, 11):
            reach = math.ceil(len(s["scores"]) * 10 * k / 100)
            rate = d["churners"].iloc[:k].sum() / d["rows"].iloc[:k].sum()
            gain = reach * rate * r.save_rate * r.value_per_retained
            nets.append(gain - reach * r.cost_per_contact)
        return max(nets)
    if kind == "derived":
        return derived[rest]
    if kind == "config":  # budget_pct is in percent, shown with a % sign
        return r.budget_pct / 100 if rest == "budget_pct" else getattr(r, rest)
    if kind == "metric":
        return m[rest]
    if kind == "parent":
        return s["parent"][rest]
    if kind == "scores":
        return len(s["scores"])
    if kind == "score":
        return float(s["scores"].set_index("user_id").loc[rest, "churn_probability"])
    if kind == "curve":
        k = int(rest.split(":")[0])
        return d["churners"].cumsum().iloc[k - 1] / d["rows"].cumsum().iloc[k - 1]
    if kind in ("decile", "calibration"):
        index, column = rest.split(":")
        table = s["csv"]["deciles" if kind == "decile" else "calibration"]
        by = "decile" if kind == "decile" else "bin"
        return float(table.set_index(by).loc[int(index), column])
    if kind == "driver":
        return float(s["csv"]["drivers"].set_index("feature").loc[rest, "value"])
    if kind == "table":
        name, what = rest.split(":")
        t = DeltaTable(cfg.table(name))
        return (
            t.version()
            if what == "version"
            else len(t.to_pandas(columns=[t.schema().fields[0].name]))
        )
    if kind == "tag":
        return float(s["mv"].tags[rest])
    if kind == "drift":
        drift = DeltaTable(cfg.table("drift")).to_pandas()
        mine = drift[
            (drift.model_version == int(s["mv"].version)) & (drift.snapshot_date == s["snapshot"])
        ]
        return float(mine.set_index("feature").loc[rest.split(":")[0], "psi"])
    if kind == "mlflow" and rest == "score_psi":
        runs = s["client"].search_runs(
            [s["mv"].run_id and s["client"].get_run(s["mv"].run_id).info.experiment_id],
            f"tags.`lakeml.kind` = 'monitoring' and tags.model_version = '{s['mv'].version}'",
            order_by=["attributes.start_time DESC"],
        )
        return runs[0].data.metrics["score_psi"]
    if kind == "realized":
        day, version, metric = rest.split(":")
        perf = DeltaTable(cfg.table("performance")).to_pandas()
        row = perf[(perf.snapshot_date.astype(str) == day) & (perf.model_version == int(version))]
        return float(row[metric].iloc[0])
    raise AssertionError(f"the test does not know where {key} comes from")


def test_every_number_in_the_report_equals_its_source(reported) -> None:
    cfg, out, html_text = reported
    parser = Numbers()
    parser.feed(html_text)
    assert len(parser.found) > 60
    s = sources(cfg, html_text)
    kinds = set()
    for key, text in parser.found:
        value, slack = shown(text)
        assert value == pytest.approx(expected(key, s, cfg), abs=slack), (key, text)
        kinds.add(key.split(":")[0])
    # Every kind of source appears: MLflow metrics, artifacts and tags; Delta tables; config.
    every = "metric parent decile calibration driver score scores table drift mlflow realized"
    assert {*every.split(), "derived", "config", "tag", "curve"} <= kinds


def test_the_report_is_self_contained_and_logged_on_the_versions_run(reported) -> None:
    cfg, out, html_text = reported
    # Nothing refers to another host: no http(s) URL in any src, href or url().
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html_text)
    assert "url(" not in html_text
    assert html_text.count('src="data:image/png;base64,') == 4
    headings = re.findall(r"<h2>(.*?)</h2>", html_text)
    assert headings == [
        "Who to contact this week, and what it is worth",
        "The model",
        "What drives churn",
        "The data behind it",
        "Known limits",
    ]
    client = MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri)
    mv = client.get_model_version_by_alias(cfg.mlflow.registered_model, "champion")
    logged = [a.path for a in client.list_artifacts(mv.run_id, "reports")]
    assert logged == [f"reports/{Path(out['path']).name}"]


def test_the_markdown_variant_holds_the_same_sections_and_its_charts(spark, xgboost_lake) -> None:
    cfg = xgboost_lake["cfg"]
    out = run_report(spark, cfg, Report("report", stream=io.StringIO()), fmt="md")
    text = Path(out["path"]).read_text()
    assert out["path"].endswith(".md")
    assert (
        re.findall(r"^## (.*)$", text, re.M)[0] == "Who to contact this week, and what it is worth"
    )
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert len(images) == 4
    assert all((Path(out["path"]).parent / name).stat().st_size > 1000 for name in images)


@pytest.mark.parametrize(
    "override,key",
    [
        ("report.cost_per_contact=-1", "report.cost_per_contact"),
        ("report.value_per_retained=-5", "report.value_per_retained"),
        ("report.save_rate=1.2", "report.save_rate"),
        ("report.save_rate=-0.1", "report.save_rate"),
        ("report.budget_pct=15", "report.budget_pct"),
    ],
)
def test_bad_business_assumptions_are_config_errors(override: str, key: str) -> None:
    with pytest.raises(LakemlError, match=re.escape(f"config key '{key}'")):
        load_config(CONF, ["storage.root=/tmp/unused", override])


def test_the_report_opens_offline_in_a_real_browser(reported, tmp_path) -> None:
    from browser import is_blank, open_page

    cfg, out, html_text = reported
    # LAKEML_SCREENSHOTS keeps the screenshot somewhere that outlives the test.
    folder = Path(os.environ.get("LAKEML_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page = open_page(out["path"], folder / "report.png", width=1100, height=1800)
    assert page.requests == []
    assert not is_blank(page.screenshot)
    assert "Who to contact this week, and what it is worth" in page.dom
    assert page.console_errors == []


def test_the_report_prints_to_pdf(reported, tmp_path) -> None:
    import subprocess

    from browser import ensure_chromium

    cfg, out, html_text = reported
    pdf = tmp_path / "report.pdf"
    subprocess.run(
        [ensure_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu",
         f"--user-data-dir={tmp_path / 'profile'}", "--no-pdf-header-footer",
         f"--print-to-pdf={pdf}", Path(out["path"]).as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    # A few A4/Letter pages: the tables and charts, not one page per element.
    pages = len(re.findall(rb"/Type\s*/Page[^s]", data))
    assert 2 <= pages <= 20, pages


def test_mlflow_ui_shows_lakemls_runs_and_model_descriptions(xgboost_lake, tmp_path) -> None:
    from browser import chromium
    from mlflow_server import mlflow_server

    from lakeml.registry.register import MODEL_DESCRIPTION
    from lakeml.tracking.ui import DESCRIPTION, experiment_url

    cfg = xgboost_lake["cfg"]
    client = MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri)
    experiment = client.get_experiment_by_name(cfg.mlflow.experiment)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    name = cfg.mlflow.registered_model
    mv = client.get_model_version_by_alias(name, "champion")
    with (
        mlflow_server(cfg.tracking_uri, cfg.artifact_location, tmp_path) as server,
        chromium() as open_page,
    ):
        runs = open_page(
            experiment_url(server, experiment.experiment_id),
            tmp_path / "runs.png",
            wait_for="location.href.includes('/runs') && "
            "!!document.querySelector('[role=grid] a[href*=runs]')",
        )
        assert "/runs?" in runs.url and DESCRIPTION.split(":")[0] in runs.dom
        model = open_page(
            f"{server}/#/models/{name}",
            tmp_path / "model.png",
            wait_for="document.body.innerText.includes('lakeml churn model')",
        )
        assert MODEL_DESCRIPTION.split(":")[0] in model.dom
        version = open_page(
            f"{server}/#/models/{name}/versions/{mv.version}",
            tmp_path / "version.png",
            wait_for="document.body.innerText.includes('Gate:')",
        )
        assert (
            f"xgboost fit on {xgboost_lake['trained']['challenger']['fit_window']}" in version.dom
        )
        assert all(u.startswith(server) for u in runs.requests + model.requests)
