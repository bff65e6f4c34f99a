"""The workers table: which workers are alive (by heartbeat) and which job each one runs.

Plain row updates with no job-state logic, so both the job state machine (``backend.jobs``) and
the leases (``backend.leases``) can stand on it. Functions that take no ``commit`` note leave the
commit to the caller's transaction.
"""
from __future__ import annotations

import datetime as dt
import os
import socket
from typing import Optional, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.models import Worker, utcnow
from backend.settings import Settings

# WORKER_HEARTBEAT_TIMEOUT_S's default (backend.settings), for callers that pass no timeout
DEFAULT_TIMEOUT_S: float = Settings.model_fields["worker_heartbeat_timeout_s"].default


def cutoff(timeout_s: float) -> dt.datetime:
    """Heartbeats and leases older than this are stale."""
    return utcnow() - dt.timedelta(seconds=timeout_s)


def upsert_worker(session: Session, worker_name: str, *, queues: Sequence[str], device: str,
                  current_job_id: Optional[int], hostname: Optional[str], pid: Optional[int],
                  precision_facts: Optional[dict] = None, gpus: int = 1) -> None:
    """Record that ``worker_name`` is alive now (commits). ``gpus``: the most processes one job
    may run on it (``backend.capacity``)."""
    now = utcnow()
    row = session.get(Worker, worker_name, populate_existing=True)
    if row is None:
        row = Worker(name=worker_name, started_at=now)
        session.add(row)
    row.queues, row.device, row.last_heartbeat = [str(q) for q in queues], device, now
    row.current_job_id, row.gpus = current_job_id, int(gpus)
    if precision_facts is not None:
        row.precision_facts = precision_facts
    row.hostname = hostname or socket.gethostname()
    row.pid = pid if pid is not None else os.getpid()
    session.commit()


def set_current_job(session: Session, worker_name: str, job_id: int) -> None:
    """Does not commit (part of the claim's transaction)."""
    session.execute(update(Worker).where(Worker.name == worker_name).values(current_job_id=job_id))


def clear_current_job(session: Session, worker_name: str, job_id: int) -> None:
    """Does not commit (part of the caller's transaction)."""
    session.execute(update(Worker).where(Worker.name == worker_name, Worker.current_job_id == job_id)
                    .values(current_job_id=None))


def remove_worker(session: Session, worker_name: str) -> None:
    """A worker shutting down cleanly leaves the live list at once (commits)."""
    row = session.get(Worker, worker_name)
    if row is not None:
        session.delete(row)
    session.commit()


def live_workers(session: Session, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Worker]:
    stmt = select(Worker).where(Worker.last_heartbeat >= cutoff(timeout_s)).order_by(Worker.name)
    return list(session.scalars(stmt))
