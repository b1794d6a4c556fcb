"""Live predictions in batches: the requests that wait together are predicted together.

At many concurrent connections a prediction's latency is mostly queueing behind the others,
so what matters is the CPU each one costs. A request puts its rows and a future on a queue;
one task takes everything queued when it runs (no waiting for more: a lone request is
predicted at once), checks each request's rows, predicts all the valid rows with one
encoding, one booster call and one TreeSHAP call, and gives each request its own slice
(a batch gathers up to `serve.max_rows` rows; what is left waits for the next one). The
booster scores rows independently, so an answer is the same as predicted alone.

A batch is answered by one champion version, the one current when the batch starts: it
checks the rows, predicts them, and is named in each answer. When the alias moves, the next
batch uses the new version.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass
from typing import Any

from lakeml.serving.state import Champion, Service


@dataclass(frozen=True)
class Answer:
    """What one request gets: 200 with its predictions, or an error status and message."""

    champion: Champion | None  # the version that answered, when one was loaded
    status: int
    predictions: list[dict[str, Any]] | None = None
    message: str = ""
    detail: Any = None


class Batcher:
    """Predicts queued requests together, from one task on the event loop."""

    def __init__(self, service: Service, *, max_rows: int, top_k: int) -> None:
        self.service = service
        self.max_rows = max_rows  # a request's limit, and how many rows a batch gathers
        self.top_k = top_k
        self.pending: deque[tuple[list[Any], asyncio.Future[Answer]]] = deque()
        self.wakeup: asyncio.Event | None = None
        self.task: asyncio.Task[None] | None = None
        self.batches = 0  # batches predicted so far, and requests in them (for /metrics)
        self.batched_requests = 0

    async def predict(self, rows: list[Any]) -> Answer:
        """The answer to one request's rows, once its batch is predicted."""
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            # (Started on the first request, in the server's loop; again if that changes.)
            self.pending = deque(p for p in self.pending if p[1].get_loop() is loop)
            self.wakeup = asyncio.Event()
            self.task = loop.create_task(self._run())
        future: asyncio.Future[Answer] = loop.create_future()
        self.pending.append((rows, future))
        assert self.wakeup is not None
        self.wakeup.set()
        return await future

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        while self.pending:
            _, future = self.pending.popleft()
            if not future.done():
                future.set_exception(RuntimeError("the service is stopping"))

    async def _run(self) -> None:
        assert self.wakeup is not None
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            while self.pending:
                batch = self._take()
                try:
                    self._answer(batch)
                except Exception as exc:  # each request then fails alone (a JSON 500)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                # Let the loop read and answer other requests before the next batch.
                await asyncio.sleep(0)

    def _take(self) -> list[tuple[list[Any], asyncio.Future[Answer]]]:
        """The oldest queued requests, up to `max_rows` rows in all (at least one)."""
        batch = [self.pending.popleft()]
        rows = len(batch[0][0])
        while self.pending and rows + len(self.pending[0][0]) <= self.max_rows:
            item = self.pending.popleft()
            rows += len(item[0])
            batch.append(item)
        return [(r, f) for r, f in batch if not f.cancelled()]

    def _answer(self, batch: list[tuple[list[Any], asyncio.Future[Answer]]]) -> None:
        for future, outcome in zip(
            [f for _, f in batch], self._outcomes([rows for rows, _ in batch]), strict=True
        ):
            if future.done():
                continue
            if isinstance(outcome, Answer):
                future.set_result(outcome)
            else:
                future.set_exception(outcome)

    def _outcomes(self, requests: list[list[Any]]) -> list[Answer | Exception]:
        """Each request's answer (or the exception predicting it raised), in order."""
        service = self.service
        champion = service.current.champion
        if champion is None:
            message = f"no {service.alias} version of {service.model_name} is loaded"
            return [Answer(None, 503, message=message) for _ in requests]
        model = champion.model
        if model is None:
            return [Answer(champion, 501, message=champion.no_native) for _ in requests]
        out: list[Answer | Exception | None] = []
        valid: list[int] = []
        for i, rows in enumerate(requests):
            if len(rows) > self.max_rows:
                message = f"{len(rows)} rows; at most serve.max_rows ({self.max_rows})"
                out.append(Answer(champion, 413, message=message))
                continue
            problems = model.check(rows)
            if problems:
                detail = [p.as_dict() for p in problems]
                out.append(Answer(champion, 422, message="invalid rows", detail=detail))
                continue
            out.append(None)
            valid.append(i)
        if len(valid) == 1:
            out[valid[0]] = Answer(champion, 200, model.predict(requests[valid[0]], self.top_k))
        elif valid:
            try:
                together = model.predict([r for i in valid for r in requests[i]], self.top_k)
            except Exception:
                # Checked rows should not fail; if some do, only their request fails.
                for i in valid:
                    try:
                        out[i] = Answer(champion, 200, model.predict(requests[i], self.top_k))
                    except Exception as exc:
                        out[i] = exc
            else:
                start = 0
                for i in valid:
                    end = start + len(requests[i])
                    out[i] = Answer(champion, 200, together[start:end])
                    start = end
        if valid:
            self.batches += 1
            self.batched_requests += len(valid)
        return out  # type: ignore[return-value]
