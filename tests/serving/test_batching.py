"""Predictions in batches, in-process: a small real booster (no Spark, no server).

Requests waiting together are predicted with one booster call, and each gets exactly what
it would have got alone, from one champion version per batch.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
import xgboost

from lakeml.scoring import native
from lakeml.serving.batching import Answer, Batcher
from lakeml.serving.predictor import FieldError, NativeModel
from lakeml.serving.state import Champion, Current, Service

ENCODING = {
    "slots": [
        {"column": "songs_7d", "kind": "numeric"},
        {"column": "gender", "kind": "categorical"},
        {"column": "trend", "kind": "numeric"},
    ],
    "labels": {"gender": ["F", "M", "X"]},
    "drop_last": True,
}
FEATURES = {"songs_7d": "long", "gender": "string", "trend": "double"}


@pytest.fixture(scope="module")
def model() -> NativeModel:
    rng = np.random.default_rng(7)
    rows = random_rows(rng, 400)
    x = native.encode_records(rows, ENCODING)
    y = ((x[:, 0] < 10) ^ (x[:, 2] > 0.5) ^ (x[:, 2] != x[:, 2])).astype(float)
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
        xgboost.DMatrix(x, label=y, missing=np.nan),
        num_boost_round=15,
    )
    return NativeModel("churn", 1, booster, ENCODING, FEATURES, 0.4, ("user_id",))


def random_rows(rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    genders = ["F", "M", "X", "unseen", None]
    return [
        {
            "user_id": f"u{i}",
            "songs_7d": None if i % 11 == 0 else int(rng.integers(0, 30)),
            "gender": genders[i % len(genders)],
            "trend": None if i % 7 == 0 else float(rng.normal()),
        }
        for i in range(n)
    ]


def service(champion: Champion | None) -> Service:
    s = Service(None, "churn", "champion", "/lake/gold/churn_scores", "user_id")
    s.current = Current(champion, None)
    return s


def test_rows_predicted_together_get_what_each_gets_alone(model):
    rows = random_rows(np.random.default_rng(1), 60)
    together = model.predict(rows, 2)
    assert together == [model.predict([row], 2)[0] for row in rows]
    # The probabilities of the batch scoring path, bit for bit.
    expected = native.probabilities(model.booster, native.encode_records(rows, ENCODING))
    assert [p["churn_probability"] for p in together] == expected.tolist()
    assert [p["predicted_churn"] for p in together] == (expected >= 0.4).astype(int).tolist()
    # The reasons: the raw columns with the largest positive TreeSHAP sums, largest first.
    contrib = model.booster.predict(
        xgboost.DMatrix(native.encode_records(rows, ENCODING), missing=np.nan),
        pred_contribs=True,
    )[:, :-1]
    per_column = np.stack([contrib[:, 0], contrib[:, 1:4].sum(axis=1), contrib[:, 4]], axis=1)
    for i, p in enumerate(together):
        want = sorted(
            ((c, v) for c, v in zip(FEATURES, per_column[i], strict=True) if v > 0),
            key=lambda cv: -cv[1],
        )[:2]
        assert [r["feature"] for r in p["reasons"]] == [c for c, _ in want]
        np.testing.assert_allclose([r["contribution"] for r in p["reasons"]], [v for _, v in want])
    assert all(p["reasons"] == [] for p in model.predict(rows, 0))


def test_requests_waiting_together_are_one_batch_each_answered_as_alone(model):
    champion = Champion("churn", 1, {}, model, "")
    batcher = Batcher(service(champion), max_rows=5, top_k=3)
    rows = random_rows(np.random.default_rng(2), 40)
    requests = [rows[3 * k : 3 * k + 1 + k % 3] for k in range(10)]  # 1 to 3 rows each
    requests[4] = [{**rows[0], "songs_7d": "many"}]  # invalid: 422 for that request only
    requests[7] = rows[:6]  # over max_rows: 413 for that request only

    async def main() -> list[Answer]:
        answers = await asyncio.gather(*(batcher.predict(r) for r in requests))
        await batcher.stop()
        return answers

    answers = asyncio.run(main())
    assert [a.status for a in answers] == [200] * 4 + [422] + [200] * 2 + [413] + [200] * 2
    assert answers[4].detail == [FieldError(0, "songs_7d", "expected long, got 'many'").as_dict()]
    assert answers[7].message == "6 rows; at most serve.max_rows (5)"
    for request, answer in zip(requests, answers, strict=True):
        assert answer.champion is champion
        if answer.status == 200:
            assert answer.predictions == model.predict(request, 3)
    # Eight valid requests, 15 rows in all, predicted in batches of at most 5 rows.
    assert batcher.batched_requests == 8
    assert sum(len(r) for r, a in zip(requests, answers, strict=True) if a.status == 200) == 15
    assert 3 <= batcher.batches < 8


def test_a_batch_is_answered_by_the_version_current_when_it_starts(model):
    v1, v2 = Champion("churn", 1, {}, model, ""), Champion("churn", 2, {}, model, "")
    s = service(v1)
    batcher = Batcher(s, max_rows=1000, top_k=3)
    row = random_rows(np.random.default_rng(3), 1)

    async def main() -> tuple[list[Answer], Answer]:
        queued = [asyncio.ensure_future(batcher.predict(row)) for _ in range(3)]
        await asyncio.sleep(0)  # all three are queued; their batch has not started
        s.current = Current(v2, None)  # the alias moved
        answers = await asyncio.gather(*queued)
        s.current = Current(v1, None)  # and back: the next batch uses v1 again
        after = await batcher.predict(row)
        await batcher.stop()
        return answers, after

    answers, after = asyncio.run(main())
    assert [a.champion.version for a in answers] == [2, 2, 2]
    assert batcher.batches == 2 and after.champion.version == 1
    assert answers[0].predictions == after.predictions


def test_no_champion_or_no_native_model_answers_every_request():
    row = [{"songs_7d": 1, "gender": "F", "trend": 0.5}]
    no_native = Champion("churn", 3, {}, None, "churn v3 has no native artifact")

    async def ask(champion: Champion | None) -> list[Answer]:
        batcher = Batcher(service(champion), max_rows=10, top_k=3)
        answers = await asyncio.gather(batcher.predict(row), batcher.predict(row))
        await batcher.stop()
        return answers

    none = asyncio.run(ask(None))
    assert [(a.status, a.message) for a in none] == [
        (503, "no champion version of churn is loaded")
    ] * 2
    without = asyncio.run(ask(no_native))
    assert [(a.status, a.message) for a in without] == [
        (501, "churn v3 has no native artifact")
    ] * 2


class Flaky:
    """A model whose prediction fails for rows marked `boom` (which checks let through)."""

    threshold = 0.5

    def check(self, rows: list[Any]) -> list[FieldError]:
        return []

    def predict(self, rows: list[dict], top_k: int) -> list[dict]:
        if any(r.get("boom") for r in rows):
            raise ValueError("boom")
        return [{"churn_probability": r["p"], "predicted_churn": 0, "reasons": []} for r in rows]


def test_a_request_that_fails_its_batch_fails_alone():
    flaky = Champion("churn", 1, {}, Flaky(), "")  # type: ignore[arg-type]
    batcher = Batcher(service(flaky), max_rows=10, top_k=0)

    async def main() -> list[Any]:
        requests = [[{"p": 0.1}], [{"boom": True}], [{"p": 0.3}, {"p": 0.4}]]
        out = await asyncio.gather(*(batcher.predict(r) for r in requests), return_exceptions=True)
        await batcher.stop()
        return out

    first, failed, last = asyncio.run(main())
    assert [p["churn_probability"] for p in first.predictions] == [0.1]
    assert isinstance(failed, ValueError)
    assert [p["churn_probability"] for p in last.predictions] == [0.3, 0.4]
