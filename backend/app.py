"""FastAPI app factory: ``backend.app:create_app`` (uvicorn --factory)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import AsyncIterator, Optional

from anyio import to_thread
from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from backend import errors
from backend.api_docs import mount_api_docs
from backend.celery_client import recover_stale_jobs, resend_queued_jobs
from backend.db import make_engine, make_session_factory, migrate
from backend.housekeeping import housekeeping, sweep_once
from backend.lost_tasks import LostTaskWatch
from backend.notifier import Notifier
from backend.routes import config, datasets, events, finetune, jobs, samples, system
from backend.settings import Settings, get_settings
from backend.storage import Storage
from backend.web import SelectiveGZip, mount_frontend

log = logging.getLogger("backend")

DESCRIPTION = """Train and sample 2D/3D diffusion models on uploaded medical volumes.

With `API_TOKEN` set, every route but `/api/health` needs `Authorization: Bearer <token>`
(the events route also takes `?token=`). Errors are `{"detail": ...}`; validation errors list
`{"loc": "<dotted key path>", "msg": "<reason>"}`.
"""


async def _reap_stale_jobs(app: FastAPI) -> None:
    """At start, re-send the tasks of queued jobs; then re-queue running jobs whose worker went
    silent, also when no worker is left to notice (workers do the same; claim_job makes the
    duplicate tasks harmless), and re-send the task of a queued job that idle workers leave
    alone (``backend.lost_tasks``: its message was lost)."""
    settings: Settings = app.state.settings
    interval = max(1.0, min(30.0, settings.worker_heartbeat_timeout_s / 2))

    def once() -> list[int]:
        with app.state.session_factory() as s:
            return recover_stale_jobs(s, app.state.settings)

    def resend() -> list[int]:
        with app.state.session_factory() as s:
            return resend_queued_jobs(s, settings.redis_url)

    lost = LostTaskWatch(grace_s=settings.worker_heartbeat_timeout_s)

    def resend_lost() -> list[int]:
        with app.state.session_factory() as s:
            return lost.resend(s, settings.worker_heartbeat_timeout_s, settings.redis_url)

    try:
        ids = await to_thread.run_sync(resend)
        if ids:
            log.info("sent the tasks of queued jobs %s again (the broker may have lost them)", ids)
    except Exception as exc:  # noqa: BLE001 - broker down: jobs stay queued, creating one says so
        log.warning("could not re-send queued jobs: %s", exc)
    while True:
        await asyncio.sleep(interval)
        try:
            ids = await to_thread.run_sync(once)
            if ids:
                log.warning("re-queued jobs %s: their worker stopped heartbeating", ids)
            ids = await to_thread.run_sync(resend_lost)
            if ids:
                log.warning("sent the tasks of queued jobs %s again: idle workers left them alone "
                            "for %gs (their messages were lost)", ids, lost.grace_s)
        except Exception as exc:  # noqa: BLE001 - keep reaping; the next round retries
            log.warning("stale-job recovery failed: %s", exc)


def _document_validation_errors(app: FastAPI) -> None:
    """FastAPI documents every 422 as its default shape (loc = list); ours (errors.install) is
    ErrorResponse with loc = a dotted key path, so the document says that instead; and it leaves
    out the 400 of a JSON body that does not parse."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = generate()
            comps = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in comps and "ErrorResponse" in comps:
                comps["HTTPValidationError"] = {"$ref": "#/components/schemas/ErrorResponse"}
                comps.pop("ValidationError", None)
            # a body that is not JSON at all is a 400 before validation: say so where a body is JSON
            for ops in schema.get("paths", {}).values():
                for op in ops.values():
                    if "application/json" in op.get("requestBody", {}).get("content", {}):
                        op["responses"].setdefault("400", {
                            "description": "the body is not JSON", "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/ErrorResponse"}}}})
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Optional[Settings] = None) -> FastAPI:
    settings = settings or get_settings()
    storage = Storage(settings.resolved_data_dir)
    storage.ensure()
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)  # at start, before any request; safe with several processes starting at once

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await to_thread.run_sync(sweep_once, app)  # leftovers of a crash go before the first request
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(_reap_stale_jobs(app)), loop.create_task(housekeeping(app))]
        yield
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await app.state.notifier.close()
        engine.dispose()

    app = FastAPI(title="DDPM Studio API", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.state.settings = settings
    app.state.storage = storage
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine, settings.redis_url)
    app.state.notifier = Notifier(settings.redis_url)
    errors.install(app)

    api = APIRouter(prefix="/api")
    api.include_router(system.public)
    api.include_router(system.router)
    api.include_router(datasets.router)
    api.include_router(events.router)  # before jobs: its own token rule (?token= accepted)
    api.include_router(jobs.router)
    api.include_router(finetune.router)
    api.include_router(samples.router)
    api.include_router(config.router)
    app.include_router(api)
    mount_api_docs(app, app.openapi_url)  # before the web app, which answers every other path
    mount_frontend(app, settings.resolved_frontend_dir)

    # level 1: most of the size win for JSON at a third of the CPU (it runs on the event loop)
    _document_validation_errors(app)
    app.add_middleware(SelectiveGZip, minimum_size=1024, compresslevel=1)
    if settings.cors_origins:  # off by default: the SPA is served same-origin
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["Authorization", "Content-Type", "Last-Event-ID"])
    return app
