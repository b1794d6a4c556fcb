"""`lakeml serve`: the app over the config's registry and scores table, run by uvicorn."""

from __future__ import annotations

import gc
import os
from typing import Any

from lakeml.core.config import Config
from lakeml.core.errors import LakemlError
from lakeml.serving.state import Service


def token(cfg: Config) -> str | None:
    """The bearer token from the environment variable `serve.auth_env` names, if any."""
    name = cfg.serve.auth_env
    if not name:
        return None
    value = os.environ.get(name, "")
    if not value:
        raise LakemlError(
            f"serve.auth_env names {name}, which is not set or empty; export it or set "
            "serve.auth_env to '' to serve without a token"
        )
    return value


def build(cfg: Config, client: Any) -> tuple[Any, Service]:
    """The FastAPI app and its service, loaded once before the first request."""
    from lakeml.serving.app import create_app

    service = Service(
        client=client,
        model_name=cfg.mlflow.registered_model,
        alias="champion",
        scores_path=cfg.table("scores"),
        entity_col=cfg.train.entity_col,
    )
    service.refresh()
    app = create_app(
        service,
        token=token(cfg),
        max_body_bytes=cfg.serve.max_body_bytes,
        max_rows=cfg.serve.max_rows,
        max_score_age_days=cfg.serve.max_score_age_days,
        top_k=cfg.score.reasons_top_k,
    )
    return app, service


def serve(cfg: Config, client: Any, host: str, port: int, on_ready: Any = None) -> None:
    """Serve until interrupted; the refresher stops with the server."""
    import uvicorn

    app, service = build(cfg, client)
    # What is loaded by now (libraries, the model, the scores index) stays for the life of
    # the process: out of the collector's sight, a full collection no longer walks it, which
    # stalled every request in flight for a few hundred milliseconds on a busy machine.
    gc.collect()
    gc.freeze()
    service.run_refresher(cfg.serve.refresh_seconds)
    if on_ready is not None:
        on_ready(service)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        service.stop()
