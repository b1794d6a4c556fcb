"""Readiness of the service, from its loaded state (no server needed)."""

from __future__ import annotations

import datetime as dt

from lakeml.serving.lookup import ScoresIndex
from lakeml.serving.state import Champion, Current, Service

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


def service(current: Current) -> Service:
    s = Service(None, "churn", "champion", "/lake/gold/churn_scores", "user_id")
    s.current = current
    return s


def scores(written: dt.datetime) -> ScoresIndex:
    return ScoresIndex("/p", 3, "user_id", dt.date(2018, 11, 26), written, {"u1": 0}, {})


def test_ready_with_a_champion_and_scores_written_within_the_age_limit():
    champion = Champion("churn", 2, {}, None, "no native artifact")
    # An old snapshot scored 7.5 days ago is fresh at 8 days.
    fresh = service(Current(champion, scores(NOW - dt.timedelta(days=7.5)), ("store: down",)))
    assert fresh.ready(8, NOW) == (True, ["store: down"])
    stale = service(Current(champion, scores(NOW - dt.timedelta(days=9)), ()))
    assert stale.ready(8, NOW) == (
        False,
        ["the latest scores were written 9.0 days ago (serve.max_score_age_days is 8)"],
    )
    assert service(Current(None, None, ())).ready(8, NOW) == (
        False,
        [
            "no champion version of churn loaded",
            "no scores of churn in /lake/gold/churn_scores",
        ],
    )
