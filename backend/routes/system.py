"""Health and workers."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from backend.db import ping
from backend.deps import get_app_settings, get_session, require_token
from backend.events import redis_client
from backend.worker_registry import live_workers
from backend.schemas import Health, WorkerCapacity, WorkerOut
from backend.settings import Settings

public = APIRouter(tags=["system"])
router = APIRouter(tags=["system"], dependencies=[Depends(require_token)])


def _broker_ok(url: str) -> bool:
    try:
        return bool(redis_client(url).ping())
    except Exception:  # noqa: BLE001 - health reports, never raises
        return False


@public.get("/health", response_model=Health, responses={503: {"model": Health}})
def health(session: Session = Depends(get_session), settings: Settings = Depends(get_app_settings)):
    """No token needed. 503 when the database is unreachable; 'degraded' when the broker is."""
    db_ok = ping(session)
    broker_ok = _broker_ok(settings.redis_url)
    live = live_workers(session, settings.worker_heartbeat_timeout_s) if db_ok else []
    body = Health(status="ok" if db_ok and broker_ok else "degraded", database="ok" if db_ok else "error",
                  broker="ok" if broker_ok else "error", workers=len(live),
                  live_workers=[WorkerCapacity.model_validate(w) for w in live])
    return JSONResponse(body.model_dump(), status_code=200 if db_ok else 503)


@router.get("/workers", response_model=list[WorkerOut])
def workers(session: Session = Depends(get_session), settings: Settings = Depends(get_app_settings)):
    """Workers alive by heartbeat: name, queues, device, GPUs (processes one job may run on it),
    current job, last heartbeat."""
    return [WorkerOut.model_validate(w) for w in live_workers(session, settings.worker_heartbeat_timeout_s)]
