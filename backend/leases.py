"""Worker leases: who runs which job, heartbeats, and recovery of jobs whose worker went silent.

A job is run by the worker named in ``jobs.worker`` while ``jobs.lease_renewed_at`` is fresher
than the heartbeat timeout. ``claim_job`` is a single conditional UPDATE, so two workers that
receive the same task (a redelivered Celery message, a re-queue) can never both run it.
Every function here commits the session it is given.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from backend.dispatch import Queue
from backend.events import publish_event
from backend.jobs import JobStatus, get_job, status_payload, transition
from backend.models import Job, utcnow
from backend.worker_registry import (DEFAULT_TIMEOUT_S, clear_current_job, cutoff, set_current_job,
                                     upsert_worker)


@dataclasses.dataclass(frozen=True)
class LeaseState:
    held: bool  # False: stop now, the job was re-queued or finished elsewhere
    cancel_requested: bool  # True: checkpoint and end the job ``cancelled``


def claim_job(session: Session, job_id: int, worker_name: str,
              timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Take a queued job (or a running one whose lease expired) for ``worker_name``; atomic.

    True: the job is now ``running`` on this worker and the caller must run it. False: someone
    else has it, it was cancelled, or it is finished; the caller drops the task.
    """
    now = utcnow()
    values = {"worker": worker_name, "lease_renewed_at": now, "started_at": now, "error": None,
              "finished_at": None, "attempts": Job.attempts + 1}
    claimable = or_(Job.status == JobStatus.queued, Job.lease_renewed_at < cutoff(timeout_s))
    if not transition(session, job_id, JobStatus.running, values, Job.cancel_requested.is_(False), claimable):
        session.rollback()
        return False
    set_current_job(session, worker_name, job_id)
    publish_event(session, job_id, "status", status_payload(get_job(session, job_id)))
    session.commit()
    return True


def renew_lease(session: Session, job_id: int, worker_name: str) -> LeaseState:
    """Extend this worker's lease on a running job; also says whether a cancel was asked."""
    stmt = (update(Job).where(Job.id == job_id, Job.worker == worker_name, Job.status == JobStatus.running)
            .values(lease_renewed_at=utcnow()).execution_options(synchronize_session=False))
    held = session.execute(stmt).rowcount == 1
    cancel = bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))
    session.commit()
    return LeaseState(held=held, cancel_requested=cancel)


def heartbeat(session: Session, worker_name: str, *, queues: Sequence[str] = (Queue.cpu,),
              device: str = "cpu", current_job_id: Optional[int] = None,
              hostname: Optional[str] = None, pid: Optional[int] = None,
              precision_facts: Optional[dict] = None, gpus: int = 1) -> Optional[LeaseState]:
    """Record that ``worker_name`` is alive (upsert its row); renew its current job's lease.

    Returns the lease state of ``current_job_id`` (None when it runs nothing).
    """
    upsert_worker(session, worker_name, queues=queues, device=device, current_job_id=current_job_id,
                  hostname=hostname, pid=pid, precision_facts=precision_facts, gpus=gpus)
    if current_job_id is None:
        return None
    return renew_lease(session, current_job_id, worker_name)


def release_job(session: Session, job_id: int, worker_name: str) -> bool:
    """running -> queued, by the worker holding it (e.g. shutting down gracefully after a
    checkpoint). True when released; the caller then enqueues its task again
    (``celery_client.enqueue_job``) so the next free worker resumes it."""
    values = {"worker": None, "lease_renewed_at": None, "eta_s": None, "it_s": None}
    if not transition(session, job_id, JobStatus.queued, values, Job.worker == worker_name,
                      only_from=(JobStatus.running,)):
        session.rollback()
        return False
    clear_current_job(session, worker_name, job_id)
    publish_event(session, job_id, "status", status_payload(get_job(session, job_id)))
    session.commit()
    return True


def requeue_stale_jobs(session: Session, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[int]:
    """Running jobs whose lease is older than ``timeout_s``: back to ``queued`` (ids returned,
    the caller enqueues their tasks again), or ``cancelled`` when a cancel was pending."""
    stale_where = (or_(Job.lease_renewed_at < cutoff(timeout_s), Job.lease_renewed_at.is_(None)),)
    candidates = list(session.scalars(select(Job.id).where(Job.status == JobStatus.running, *stale_where)))
    requeued: list[int] = []
    for job_id in candidates:
        cancel = bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))
        dst, values = ((JobStatus.cancelled, {"finished_at": utcnow(), "worker": None}) if cancel else
                       (JobStatus.queued, {"worker": None, "lease_renewed_at": None,
                                           "error": None, "eta_s": None, "it_s": None}))
        if transition(session, job_id, dst, values, *stale_where, only_from=(JobStatus.running,)):
            publish_event(session, job_id, "status", status_payload(get_job(session, job_id)))
            if not cancel:
                requeued.append(job_id)
    session.commit()
    return requeued
