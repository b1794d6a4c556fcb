"""SLA checks and the retraining policy: pure decisions over facts read at the edge.

`gather` reads what the lake and the registry say about the champion (its age, the latest
snapshot it scored, its latest realized performance and drift, the quarantine share);
`sla_checks` and `retrain_decision` turn those facts into verdicts with reasons, and
`alert_body` into a Slack-compatible message.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeml.core import storage
from lakeml.core.config import MonitorConfig, RetrainConfig
from lakeml.scoring.contract import SNAPSHOT


@dataclass(frozen=True)
class Facts:
    """What the checks look at. None: not known yet (no table, no champion, no row)."""

    model_name: str
    champion_version: int | None = None
    champion_age_days: float | None = None
    latest_feature_snapshot: dt.date | None = None
    latest_scored_snapshot: dt.date | None = None  # by the champion version
    realized: dict[str, Any] | None = None  # the champion's latest model_performance row
    drifted_features: int | None = None  # on the champion's latest drift check
    features_checked: int | None = None
    drift_snapshot: dt.date | None = None
    quarantined: int | None = None
    silver_rows: int | None = None


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def share_check(
    name: str,
    part: int | None,
    whole: int | None,
    limit: float,
    unknown: str,
    what: str,
    digits: int = 1,
) -> Check:
    """`part` of `whole` at most `limit` (a fraction); passes saying `unknown` without data."""
    if part is None or not whole:
        return Check(name, True, unknown)
    share = part / whole
    shown = f"{share:.{digits}%}, max {limit:.{digits}%}"
    return Check(name, share <= limit, f"{part} of {whole} {what} ({shown})")


def sla_checks(f: Facts, m: MonitorConfig) -> list[Check]:
    """Every SLA check with its verdict; a check without data yet passes and says so, except
    `champion` (nothing is served without one) and `scores_fresh` (features to score exist)."""
    checks = []
    if f.champion_version is None:
        checks.append(Check("champion", False, f"{f.model_name} has no champion version"))
    else:
        checks.append(Check("champion", True, f"{f.model_name} v{f.champion_version}"))

    if f.latest_feature_snapshot is None:
        checks.append(Check("scores_fresh", True, "no feature snapshot yet"))
    elif f.latest_scored_snapshot is None:
        checks.append(
            Check(
                "scores_fresh",
                False,
                f"the champion has scored no snapshot; features exist up to "
                f"{f.latest_feature_snapshot}",
            )
        )
    else:
        lag = (f.latest_feature_snapshot - f.latest_scored_snapshot).days
        checks.append(
            Check(
                "scores_fresh",
                lag <= m.max_score_lag_days,
                f"latest scored snapshot {f.latest_scored_snapshot}, latest feature snapshot "
                f"{f.latest_feature_snapshot}: {lag} days behind (max {m.max_score_lag_days})",
            )
        )

    r = f.realized
    if r is None:
        checks.append(Check("realized_performance", True, "no matured scored snapshot yet"))
    else:
        problems = []
        roc, lift = r.get("roc_auc"), r.get("pr_auc_lift")
        if roc is not None and roc < m.min_realized_roc_auc:
            problems.append(f"roc_auc {roc:.4f} < {m.min_realized_roc_auc}")
        if lift is not None and lift < m.min_realized_pr_auc_lift:
            problems.append(f"pr_auc_lift {lift:.2f} < {m.min_realized_pr_auc_lift}")
        shown = ", ".join(
            f"{k} {r[k]:.4f}" for k in ("roc_auc", "pr_auc", "pr_auc_lift") if r.get(k) is not None
        )
        where = f"snapshot {r[SNAPSHOT]} ({r['rows']} rows, {r['positives']} churners)"
        checks.append(
            Check(
                "realized_performance",
                not problems,
                f"{where}: {'; '.join(problems) if problems else shown or 'one class only'}",
            )
        )

    checks.append(
        share_check(
            "drift",
            f.drifted_features,
            f.features_checked,
            m.max_drift_share,
            "no drift check yet",
            f"features drifted on {f.drift_snapshot}",
        )
    )
    known = f.quarantined is not None and f.silver_rows is not None
    checks.append(
        share_check(
            "quarantine",
            f.quarantined,
            (f.quarantined or 0) + (f.silver_rows or 0) if known else None,
            m.max_quarantine_share,
            "no silver rows yet",
            "rows quarantined",
            digits=2,
        )
    )
    return checks


def retrain_decision(f: Facts, m: MonitorConfig, r: RetrainConfig) -> tuple[bool, list[str]]:
    """Whether to retrain, and why (or why not), in plain words."""
    if f.champion_version is None:
        return True, [f"{f.model_name} has no champion"]
    checks = {c.name: c for c in sla_checks(f, m)}
    reasons, retrain = [], False
    age = f.champion_age_days or 0.0
    if age > r.max_champion_age_days:
        retrain = True
        reasons.append(
            f"champion v{f.champion_version} is {age:.1f} days old "
            f"(> retrain.max_champion_age_days {r.max_champion_age_days})"
        )
    else:
        reasons.append(
            f"champion v{f.champion_version} is {age:.1f} days old (<= {r.max_champion_age_days})"
        )
    for name in ("realized_performance", "drift"):
        c = checks[name]
        retrain = retrain or not c.ok
        reasons.append(f"{name} {'below the floors' if not c.ok else 'holds'}: {c.detail}")
    return retrain, reasons


def alert_body(checks: list[Check], model_name: str, root: str) -> dict[str, Any]:
    """A Slack-compatible message (`text`), with the checks as data for other receivers."""
    failed = [c for c in checks if not c.ok]
    lines = [f"lakeml monitor: {len(failed)} of {len(checks)} checks failed for {model_name}"]
    lines += [f"- {c.name}: {c.detail}" for c in failed]
    return {
        "text": "\n".join(lines),
        "model": model_name,
        "storage_root": root,
        "checks": [asdict(c) for c in checks],
    }


def post_webhook(url: str, body: dict[str, Any], timeout: float) -> str | None:
    """POST the alert as JSON; None when delivered, else why not (never naming the URL,
    which may carry a token)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
        return None
    except urllib.error.HTTPError as exc:
        return f"the webhook answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"the webhook could not be reached ({type(exc).__name__}: {str(reason)[:80]})"


# --- storage edge -----------------------------------------------------------------------------


def _latest(spark: SparkSession, path: str, column: str, where: Any = None) -> dt.date | None:
    if not storage.exists(spark, path):
        return None
    df = storage.read(spark, path)
    if where is not None:
        df = df.filter(where)
    return df.agg(F.max(F.col(column).cast("date"))).first()[0]


def gather(
    spark: SparkSession,
    client: Any,
    model_name: str,
    tables: dict[str, str],
    snapshot_col: str,
    now: dt.datetime | None = None,
) -> Facts:
    """Read the facts about `model_name`'s champion from the registry and the tables
    (`tables`: features, scores, performance, drift, silver, quarantine paths)."""
    from lakeml.registry.versions import alias_version

    mv = alias_version(client, model_name, "champion")
    if mv is None:
        version, age = None, None
    else:
        version = int(mv.version)
        now = now or dt.datetime.now(dt.timezone.utc)
        created = dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, dt.timezone.utc)
        age = (now - created).total_seconds() / 86400
    champion = (F.col("model_name") == model_name) & (F.col("model_version") == (version or -1))
    facts: dict[str, Any] = {
        "champion_version": version,
        "champion_age_days": age,
        "latest_feature_snapshot": _latest(spark, tables["features"], snapshot_col),
        "latest_scored_snapshot": _latest(spark, tables["scores"], SNAPSHOT, champion),
    }
    if version is not None and storage.exists(spark, tables["performance"]):
        rows = (
            storage.read(spark, tables["performance"])
            .filter(champion)
            .orderBy(F.col(SNAPSHOT).desc())
            .limit(1)
            .collect()
        )
        facts["realized"] = rows[0].asDict() if rows else None
    day = _latest(spark, tables["drift"], SNAPSHOT, champion) if version is not None else None
    if day is not None:
        row = (
            storage.read(spark, tables["drift"])
            .filter(champion & (F.col(SNAPSHOT) == F.lit(day)))
            .agg(F.count(F.lit(1)), F.sum(F.col("drifted").cast("int")))
            .first()
        )
        facts.update(features_checked=row[0], drifted_features=row[1] or 0, drift_snapshot=day)
    if storage.exists(spark, tables["silver"]):
        # Row counts from the Delta logs' file statistics where they answer (no Spark job).
        facts["silver_rows"] = storage.describe(spark, tables["silver"])["rows"]
        quarantine = tables["quarantine"]
        exists = storage.exists(spark, quarantine)
        facts["quarantined"] = storage.describe(spark, quarantine)["rows"] if exists else 0
    return Facts(model_name=model_name, **facts)
