"""The HTTP routes (FastAPI): scores by id, live predictions, the model, health, metrics.

Every error is a JSON body `{"error": ..., "detail": ...}` with no stack trace; the service
keeps serving after any bad request. Responses carry `X-Model-Version: <name>/<version>`,
the champion that was current when the request was answered; a prediction names the version
that checked and predicted its batch (`lakeml.serving.batching`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from lakeml.serving.batching import Answer, Batcher
from lakeml.serving.state import Service

# Latency histogram buckets (seconds) for /metrics.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

SCORES_ROUTE, PREDICT_ROUTE = "/v1/scores/{entity_id}", "/v1/predict"
SCORES_PREFIX = SCORES_ROUTE.split("{")[0]


def error(
    status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, headers=headers)


class PredictRequest(BaseModel):
    """Feature rows as JSON objects: the model's input columns by name."""

    rows: list[Any] = Field(min_length=1)


class Metrics:
    """Requests by route and status, and a latency histogram, in Prometheus text format."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.buckets: Counter[tuple[str, float]] = Counter()
        self.sums: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests[(route, method, status)] += 1
        for b in BUCKETS:
            if seconds <= b:
                self.buckets[(route, b)] += 1
        self.sums[route] += seconds
        self.counts[route] += 1

    def render(self, gauges: dict[str, float], counters: dict[str, int] | None = None) -> str:
        lines = [
            "# HELP lakeml_requests_total HTTP requests by route, method and status.",
            "# TYPE lakeml_requests_total counter",
        ]
        for (route, method, status), n in sorted(self.requests.items()):
            lines.append(
                f'lakeml_requests_total{{route="{route}",method="{method}",status="{status}"}} {n}'
            )
        lines += [
            "# HELP lakeml_request_seconds Request latency by route.",
            "# TYPE lakeml_request_seconds histogram",
        ]
        for route in sorted(self.counts):
            for b in BUCKETS:
                lines.append(
                    f'lakeml_request_seconds_bucket{{route="{route}",le="{b}"}} '
                    f"{self.buckets[(route, b)]}"
                )
            lines.append(
                f'lakeml_request_seconds_bucket{{route="{route}",le="+Inf"}} {self.counts[route]}'
            )
            lines.append(f'lakeml_request_seconds_sum{{route="{route}"}} {self.sums[route]:.6f}')
            lines.append(f'lakeml_request_seconds_count{{route="{route}"}} {self.counts[route]}')
        for name, value in gauges.items():
            lines += [f"# TYPE {name} gauge", f"{name} {value}"]
        for name, value in (counters or {}).items():
            lines += [f"# TYPE {name} counter", f"{name} {value}"]
        return "\n".join(lines) + "\n"


def create_app(
    service: Service,
    *,
    token: str | None,
    max_body_bytes: int,
    max_rows: int,
    max_score_age_days: int,
    top_k: int,
) -> FastAPI:
    """The app over `service`; `token`, when given, is required on the /v1 routes."""
    batcher = Batcher(service, max_rows=max_rows, top_k=top_k)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await batcher.stop()

    app = FastAPI(
        title="lakeml prediction service",
        description="Churn scores by entity id and live predictions from the champion model.",
        version="1",
        lifespan=lifespan,
    )
    metrics = Metrics()
    app.state.metrics = metrics
    app.state.batcher = batcher

    def refuse(scope: dict) -> JSONResponse | None:
        """The answer to a request refused before it is read (size, token), if any."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_body_bytes):
            return error(413, f"request body over serve.max_body_bytes ({max_body_bytes})")
        if length is None and scope["method"] in ("POST", "PUT", "PATCH"):
            return error(411, "a Content-Length header is required")
        if token is not None and scope["path"].startswith("/v1/"):
            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return error(401, "missing or wrong bearer token")
        return None

    class Guard:
        """Plain ASGI middleware: refuse early, name the version, count and time, and turn
        any unexpected exception into a JSON 500 without a trace."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
            inner = self.inner
            if scope["type"] != "http":
                await inner(scope, receive, send)
                return
            started = time.perf_counter()
            status, started_response = 500, False
            champion = service.current.champion
            named = (
                [(b"x-model-version", f"{champion.name}/{champion.version}".encode())]
                if champion
                else []
            )

            async def sending(message: dict) -> None:
                nonlocal status, started_response
                if message["type"] == "http.response.start":
                    status, started_response = message["status"], True
                    headers = message.get("headers", [])
                    # A prediction names the version that answered it itself.
                    if named and not any(k == b"x-model-version" for k, _ in headers):
                        message = {**message, "headers": [*headers, *named]}
                await send(message)

            refused = refuse(scope)
            template = None
            try:
                if refused is not None:
                    await refused(scope, receive, sending)
                else:
                    template, receive = await shortcut(scope, receive, sending)
                    if template is None:
                        await inner(scope, receive, sending)
            except Exception:
                if started_response:
                    raise
                await error(500, "internal error")(scope, receive, sending)
            if template is None:
                template = getattr(scope.get("route"), "path", "unmatched")
            metrics.observe(template, scope["method"], status, time.perf_counter() - started)

    async def shortcut(scope: dict, receive: Any, send: Any) -> tuple[str | None, Any]:
        """Answer a score lookup or a well-formed prediction without FastAPI's routing and
        request validation (about half of a lookup's CPU in the app), with the very
        responses of the routes below, which answer everything else (their errors included).

        Returns the route template when answered, else None and the `receive` to go on
        with: a prediction's body, once read, is handed on as it was received.
        """
        method, path = scope["method"], scope["path"]
        if scope.get("root_path"):
            return None, receive
        if method == "GET" and path.startswith(SCORES_PREFIX):
            entity_id = path[len(SCORES_PREFIX) :]
            if not entity_id or "/" in entity_id:
                return None, receive
            await lookup(entity_id)(scope, receive, send)
            return SCORES_ROUTE, receive
        if method != "POST" or path != PREDICT_ROUTE:
            return None, receive
        # FastAPI reads JSON for this content type alone (and for none, or +json, which
        # the route handles); anything but an object with a non-empty list of rows goes
        # to the route too, for its exact 422.
        ctype = [v for k, v in scope["headers"] if k == b"content-type"]
        if ctype != [b"application/json"]:
            return None, receive
        messages, chunks = [], []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return None, replay(messages, receive)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            body = json.loads(b"".join(chunks))
        except Exception:  # not JSON (or nested too deep): the route says so
            body = None
        rows = body.get("rows") if type(body) is dict else None
        if type(rows) is not list or not rows:
            return None, replay(messages, receive)
        await answered(await batcher.predict(rows))(scope, receive, send)
        return PREDICT_ROUTE, receive

    app.add_middleware(Guard)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", "invalid")} for e in exc.errors()
        ]
        return error(422, "invalid request", detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ok, why = service.ready(max_score_age_days, dt.datetime.now(dt.UTC))
        return JSONResponse({"ready": ok, "problems": why}, status_code=200 if ok else 503)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> str:
        c = service.current
        gauges: dict[str, float] = {}
        if c.champion is not None:
            gauges["lakeml_model_version"] = c.champion.version
        if c.scores is not None:
            age = c.scores.age_days(dt.datetime.now(dt.UTC))
            if age is not None:
                gauges["lakeml_score_table_age_seconds"] = round(age * 86400, 3)
            gauges["lakeml_score_table_version"] = c.scores.version
            gauges["lakeml_scored_entities"] = len(c.scores)
        counters = {
            "lakeml_predict_batches_total": batcher.batches,
            "lakeml_predict_batched_requests_total": batcher.batched_requests,
        }
        return metrics.render(gauges, counters)

    @app.get("/v1/model")
    async def model() -> JSONResponse:
        champion = service.current.champion
        if champion is None:
            return error(503, f"no {service.alias} version of {service.model_name} is loaded")
        return JSONResponse(champion.describe())

    def lookup(entity_id: str) -> JSONResponse:
        scores = service.current.scores
        if scores is None:
            return error(503, "the scores table is not loaded")
        row = scores.get(entity_id)
        if row is None:
            return error(404, f"no score for {scores.entity_col} {entity_id!r}")
        return JSONResponse(row)

    def answered(answer: Answer) -> JSONResponse:
        champion = answer.champion
        headers = {"x-model-version": f"{champion.name}/{champion.version}"} if champion else None
        if answer.status != 200:
            return error(answer.status, answer.message, answer.detail, headers)
        assert champion is not None and champion.model is not None
        return JSONResponse(
            {
                "model_name": champion.name,
                "model_version": champion.version,
                "threshold": champion.model.threshold,
                "predictions": answer.predictions,
            },
            headers=headers,
        )

    # The two routes `shortcut` usually answers first: here for the docs, and for what it
    # hands on.
    @app.get(SCORES_ROUTE)
    async def score(entity_id: str) -> JSONResponse:
        return lookup(entity_id)

    @app.post(PREDICT_ROUTE)
    async def predict(body: PredictRequest) -> JSONResponse:
        return answered(await batcher.predict(body.rows))

    return app


def replay(messages: list[dict], receive: Any) -> Any:
    """A `receive` that gives `messages` again, then goes on with `receive`."""
    pending = list(messages)

    async def again() -> dict:
        if pending:
            return pending.pop(0)
        return await receive()

    return again
