"""The job state machine: the statuses, the kinds, the table of legal moves, and the moves.

```
queued ──claim──► running ──► succeeded | failed | cancelled
   │  └─broker refused─► failed │  ▲ (released, or lease expired: re-queued, resumes from its
   └──cancel──► cancelled        │  │  newest checkpoint; an expired lease may be taken over)
                                 cancelled | failed ──resume──► queued
```

``TRANSITIONS`` is that picture as data, and it drives every status change: ``transition``
takes the allowed source statuses of its target from the table, so a move missing from the table
cannot happen. Each change is one conditional UPDATE inside one transaction, so two processes
racing for one job never both win.

Cancel of a queued job ends it at once; cancel of a running job sets ``cancel_requested``, which
the training loop reads, and the worker then ends the job ``cancelled``. An action that the
current status does not allow raises ``JobStateError`` (the API answers 409).

Convention of this module, ``backend.leases`` and ``backend.reporting``: each function commits
the session it is given, so each call is one transaction (``transition`` itself does not).
"""
from __future__ import annotations

from enum import StrEnum
from typing import Any, Iterable, Optional

from sqlalchemy import update
from sqlalchemy.orm import Session

from backend.events import publish_event
from backend.models import Job, utcnow
from backend.worker_registry import clear_current_job


class JobStatus(StrEnum):
    """Where a job is in its life; REST, worker and database use these values."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class JobKind(StrEnum):
    """What a job does: train a model on a dataset, draw samples from a train job's weights,
    fine-tune a segmenter on a labelled dataset (from a train job's weights or from scratch), or
    run a label-efficiency study (pretrained against scratch over label budgets)."""

    train = "train"
    sample = "sample"
    finetune = "finetune"
    study = "study"


ACTIVE = (JobStatus.queued, JobStatus.running)
TERMINAL = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)
RESUMABLE = (JobStatus.failed, JobStatus.cancelled)

# Legal moves (source -> targets). Nothing else can happen: ``transition`` reads this table.
TRANSITIONS: dict[JobStatus, tuple[JobStatus, ...]] = {
    JobStatus.queued: (JobStatus.running, JobStatus.cancelled,
                       JobStatus.failed),  # failed: the broker refused its task
    JobStatus.running: (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled,
                        JobStatus.queued,  # released by its worker, or its lease expired
                        JobStatus.running),  # another worker takes over an expired lease
    JobStatus.succeeded: (),
    JobStatus.failed: (JobStatus.queued,),
    JobStatus.cancelled: (JobStatus.queued,),
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
    return dst in TRANSITIONS.get(JobStatus(src), ())


def sources_of(dst: JobStatus) -> tuple[JobStatus, ...]:
    """The statuses the table lets a job leave for ``dst``."""
    return tuple(src for src, targets in TRANSITIONS.items() if dst in targets)


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


def transition(session: Session, job_id: int, dst: JobStatus, values: dict[str, Any], *extra_where: Any,
               only_from: Optional[Iterable[JobStatus]] = None) -> bool:
    """Move the job to ``dst`` if its status is a source the table allows (of those, only
    ``only_from`` when given) and ``extra_where`` holds; True if it moved.

    Does not commit: the callers publish the status event in the same transaction.
    """
    allowed = sources_of(dst)
    sources = allowed if only_from is None else tuple(s for s in only_from if s in allowed)
    if not sources:
        return False
    return _update_while(session, job_id, sources, {**values, "status": dst}, *extra_where)


def _update_while(session: Session, job_id: int, statuses: Iterable[JobStatus], values: dict[str, Any],
                  *extra_where: Any) -> bool:
    stmt = (update(Job).where(Job.id == job_id, Job.status.in_(tuple(statuses)), *extra_where)
            .values(**values).execution_options(synchronize_session=False))
    return session.execute(stmt).rowcount == 1


def commit_with_status_event(session: Session, job_id: int) -> Job:
    """Publish the job's new status as an event and commit both together."""
    job = get_job(session, job_id)
    publish_event(session, job_id, "status", status_payload(job))
    session.commit()
    return job


def request_cancel(session: Session, job_id: int) -> Job:
    """queued -> cancelled at once; running -> cancel_requested (the worker ends it)."""
    job = get_job(session, job_id)
    if job.status == JobStatus.queued and transition(
            session, job_id, JobStatus.cancelled, {"finished_at": utcnow(), "cancel_requested": True},
            only_from=(JobStatus.queued,)):
        return commit_with_status_event(session, job_id)
    # not a status change: the flag the running job's worker reads
    if job.status in ACTIVE and _update_while(session, job_id, (JobStatus.running,), {"cancel_requested": True}):
        return commit_with_status_event(session, job_id)
    session.rollback()
    job = get_job(session, job_id)
    raise JobStateError(job_id, job.status, "cancel", "only queued or running jobs can be cancelled")


def resume(session: Session, job_id: int) -> Job:
    """cancelled | failed -> queued (the caller then enqueues its task). Keeps its checkpoints."""
    ok = transition(session, job_id, JobStatus.queued, {
        "error": None, "cancel_requested": False, "finished_at": None,
        "worker": None, "lease_renewed_at": None, "eta_s": None, "it_s": None}, only_from=RESUMABLE)
    if not ok:
        session.rollback()
        job = get_job(session, job_id)
        raise JobStateError(job_id, job.status, "resume", "only failed or cancelled jobs can be resumed")
    return commit_with_status_event(session, job_id)


def finish_job(session: Session, job_id: int, worker_name: Optional[str], status: str,
               error: Optional[str] = None) -> bool:
    """running -> succeeded | failed | cancelled, only by the worker holding the lease.

    Returns False (and changes nothing) when this worker no longer holds the job, e.g. after it
    was re-queued because its heartbeat went silent. ``worker_name=None`` skips the lease check.
    """
    if status not in TERMINAL:
        raise ValueError(f"finish_job needs one of {', '.join(TERMINAL)}, not {status!r}")
    extra = () if worker_name is None else (Job.worker == worker_name,)
    values: dict[str, Any] = {"finished_at": utcnow(), "error": error,
                              "eta_s": None if status != JobStatus.succeeded else 0.0}
    if not transition(session, job_id, JobStatus(status), values, *extra, only_from=(JobStatus.running,)):
        session.rollback()
        return False
    if worker_name is not None:
        clear_current_job(session, worker_name, job_id)
    commit_with_status_event(session, job_id)
    return True


def fail_queued(session: Session, job_id: int, error: str) -> None:
    """queued -> failed before any worker ran it (e.g. the broker refused the task)."""
    if transition(session, job_id, JobStatus.failed, {"error": error, "finished_at": utcnow()},
                  only_from=(JobStatus.queued,)):
        commit_with_status_event(session, job_id)
    else:
        session.rollback()


def ensure_deletable(job: Job) -> None:
    if job.status in ACTIVE:
        raise JobStateError(job.id, job.status, "delete", "cancel it first")
