"""The job state machine. Every change is one conditional UPDATE inside one transaction.

```
queued ──claim──► running ──► succeeded | failed | cancelled
   │                 │  ▲ (lease expired: re-queued, resumes from its newest checkpoint)
   └──cancel──► cancelled          cancelled | failed ──resume──► queued
```

Cancel of a queued job ends it at once; cancel of a running job sets ``cancel_requested``, which
the training loop reads, and the worker then ends the job ``cancelled``. An action that the
current status does not allow raises ``JobStateError`` (the API answers 409).

Convention of this module, ``backend.leases`` and ``backend.reporting``: each function commits
the session it is given, so each call is one transaction.
"""
from __future__ import annotations

from typing import Any, Optional

from sqlalchemy import update
from sqlalchemy.orm import Session

from backend.events import publish_event
from backend.models import Job, utcnow

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
ACTIVE = (QUEUED, RUNNING)
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)
RESUMABLE = (FAILED, CANCELLED)
KINDS = ("train", "sample")

# Legal edges; anything else is a JobStateError.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    QUEUED: (RUNNING, CANCELLED),
    RUNNING: (SUCCEEDED, FAILED, CANCELLED, QUEUED),  # -> queued only when its lease expired
    SUCCEEDED: (),
    FAILED: (QUEUED,),
    CANCELLED: (QUEUED,),
}


class JobStateError(Exception):
    """An action the job's current status does not allow (HTTP 409)."""

    def __init__(self, job_id: int, status: str, action: str, hint: str = ""):
        self.job_id, self.status, self.action = job_id, status, action
        msg = f"job {job_id} is {status}: cannot {action}"
        super().__init__(f"{msg}; {hint}" if hint else msg)


class JobNotFound(LookupError):
    def __init__(self, job_id: int):
        self.job_id = job_id
        super().__init__(f"job {job_id} does not exist")


def can_transition(src: str, dst: str) -> bool:
    return dst in TRANSITIONS.get(src, ())


def get_job(session: Session, job_id: int) -> Job:
    """The job, freshly read (another process may have changed it)."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise JobNotFound(job_id)
    return job


def status_payload(job: Job) -> dict[str, Any]:
    """The data of a ``status`` event."""
    return {"id": job.id, "status": job.status, "error": job.error, "worker": job.worker,
            "cancel_requested": job.cancel_requested, "step": job.step, "total": job.total,
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}


def conditional_update(session: Session, job_id: int, from_statuses: tuple[str, ...],
                       values: dict[str, Any], *extra_where: Any) -> bool:
    """UPDATE the job only while its status is one of ``from_statuses``; True if it changed.

    Does not commit: the callers publish the status event in the same transaction.
    """
    stmt = (update(Job).where(Job.id == job_id, Job.status.in_(from_statuses), *extra_where)
            .values(**values).execution_options(synchronize_session=False))
    return session.execute(stmt).rowcount == 1


def _commit_with_status_event(session: Session, job_id: int) -> Job:
    job = get_job(session, job_id)
    publish_event(session, job_id, "status", status_payload(job))
    session.commit()
    return job


def request_cancel(session: Session, job_id: int) -> Job:
    """queued -> cancelled at once; running -> cancel_requested (the worker ends it)."""
    job = get_job(session, job_id)
    now = utcnow()
    if job.status == QUEUED and conditional_update(
            session, job_id, (QUEUED,), {"status": CANCELLED, "finished_at": now, "cancel_requested": True}):
        return _commit_with_status_event(session, job_id)
    if job.status in (QUEUED, RUNNING) and conditional_update(
            session, job_id, (RUNNING,), {"cancel_requested": True}):
        return _commit_with_status_event(session, job_id)
    session.rollback()
    job = get_job(session, job_id)
    raise JobStateError(job_id, job.status, "cancel", "only queued or running jobs can be cancelled")


def resume(session: Session, job_id: int) -> Job:
    """cancelled | failed -> queued (the caller then enqueues its task). Keeps its checkpoints."""
    job = get_job(session, job_id)
    ok = conditional_update(session, job_id, RESUMABLE, {
        "status": QUEUED, "error": None, "cancel_requested": False, "finished_at": None,
        "worker": None, "lease_renewed_at": None, "eta_s": None, "it_s": None})
    if not ok:
        session.rollback()
        job = get_job(session, job_id)
        raise JobStateError(job_id, job.status, "resume", "only failed or cancelled jobs can be resumed")
    return _commit_with_status_event(session, job_id)


def finish_job(session: Session, job_id: int, worker_name: Optional[str], status: str,
               error: Optional[str] = None) -> bool:
    """running -> succeeded | failed | cancelled, only by the worker holding the lease.

    Returns False (and changes nothing) when this worker no longer holds the job, e.g. after it
    was re-queued because its heartbeat went silent. ``worker_name=None`` skips the lease check.
    """
    if status not in TERMINAL:
        raise ValueError(f"finish_job needs one of {TERMINAL}, not {status!r}")
    extra = () if worker_name is None else (Job.worker == worker_name,)
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "error": error,
                              "eta_s": None if status != SUCCEEDED else 0.0}
    if not conditional_update(session, job_id, (RUNNING,), values, *extra):
        session.rollback()
        return False
    from backend.leases import clear_current_job  # local: leases imports this module

    if worker_name is not None:
        clear_current_job(session, worker_name, job_id)
    _commit_with_status_event(session, job_id)
    return True


def fail_queued(session: Session, job_id: int, error: str) -> None:
    """queued -> failed before any worker ran it (e.g. the broker refused the task)."""
    if conditional_update(session, job_id, (QUEUED,), {"status": FAILED, "error": error,
                                                       "finished_at": utcnow()}):
        _commit_with_status_event(session, job_id)
    else:
        session.rollback()


def ensure_deletable(job: Job) -> None:
    if job.status in ACTIVE:
        raise JobStateError(job.id, job.status, "delete", "cancel it first")
