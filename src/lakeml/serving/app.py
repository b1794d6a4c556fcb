"""The HTTP routes (FastAPI): scores by id, live predictions, the model, health, metrics.

Every error is a JSON body `{"error": ..., "detail": ...}` with no stack trace; the service
keeps serving after any bad request. Responses carry `X-Model-Version: <name>/<version>`,
the champion that was current when the request was answered.
"""

from __future__ import annotations

import datetime as dt
import hmac
import time
from collections import Counter
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from lakeml.serving.state import Service

# Latency histogram buckets (seconds) for /metrics.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def error(status: int, message: str, detail: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status)


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

    def render(self, gauges: dict[str, float]) -> str:
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
    app = FastAPI(
        title="lakeml prediction service",
        description="Churn scores by entity id and live predictions from the champion model.",
        version="1",
    )
    metrics = Metrics()
    app.state.metrics = metrics

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
                    message = {**message, "headers": [*message.get("headers", []), *named]}
                await send(message)

            refused = refuse(scope)
            try:
                if refused is not None:
                    await refused(scope, receive, sending)
                else:
                    await inner(scope, receive, sending)
            except Exception:
                if started_response:
                    raise
                await error(500, "internal error")(scope, receive, sending)
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            metrics.observe(template, scope["method"], status, time.perf_counter() - started)

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
        return metrics.render(gauges)

    @app.get("/v1/model")
    async def model() -> JSONResponse:
        champion = service.current.champion
        if champion is None:
            return error(503, f"no {service.alias} version of {service.model_name} is loaded")
        return JSONResponse(champion.describe())

    @app.get("/v1/scores/{entity_id}")
    async def score(entity_id: str) -> JSONResponse:
        scores = service.current.scores
        if scores is None:
            return error(503, "the scores table is not loaded")
        row = scores.get(entity_id)
        if row is None:
            return error(404, f"no score for {scores.entity_col} {entity_id!r}")
        return JSONResponse(row)

    @app.post("/v1/predict")
    async def predict(body: PredictRequest) -> JSONResponse:
        champion = service.current.champion
        if champion is None:
            return error(503, f"no {service.alias} version of {service.model_name} is loaded")
        if champion.model is None:
            return error(501, champion.no_native)
        if len(body.rows) > max_rows:
            return error(413, f"{len(body.rows)} rows; at most serve.max_rows ({max_rows})")
        problems = champion.model.check(body.rows)
        if problems:
            return error(422, "invalid rows", [p.as_dict() for p in problems])
        predictions = champion.model.predict(body.rows, top_k)
        return JSONResponse(
            {
                "model_name": champion.name,
                "model_version": champion.version,
                "threshold": champion.model.threshold,
                "predictions": predictions,
            }
        )

    return app
