"""Send a job's task (``backend.dispatch.TASK_NAMES``) by name, carrying only the job id.

No import of ``worker``: the job table is the truth, the message is only a nudge. The queue was
chosen when the job was created or resumed (``backend.dispatch.queue_for``).
"""
from __future__ import annotations

import threading

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.dispatch import TASK_NAMES, Queue
from backend.jobs import JobKind, JobStatus
from backend.leases import requeue_stale_jobs
from backend.models import Job
from backend.settings import Settings

_apps: dict[str, Celery] = {}
_lock = threading.Lock()


class EnqueueError(RuntimeError):
    """The broker did not take the task."""


def celery_app(broker_url: str) -> Celery:
    with _lock:
        app = _apps.get(broker_url)
        if app is None:
            app = Celery("ddpm-api", broker=broker_url, set_as_current=False)
            app.conf.update(task_serializer="json", accept_content=["json"],
                            broker_connection_timeout=2, broker_connection_retry=False,
                            broker_connection_retry_on_startup=False,
                            task_default_queue=Queue.cpu.value)
            _apps[broker_url] = app
        return app


def enqueue_job(job: Job, broker_url: str) -> None:
    """Publish the job's task on its queue; raises EnqueueError when the broker is unreachable."""
    try:
        celery_app(broker_url).send_task(TASK_NAMES[JobKind(job.kind)], args=[job.id], queue=str(job.queue),
                                         retry=False)
    except Exception as exc:  # noqa: BLE001 - kombu raises many kinds; one meaning here
        raise EnqueueError(f"broker unreachable: {type(exc).__name__}") from exc


def resend_queued_jobs(session: Session, broker_url: str) -> list[int]:
    """Send the task of every queued job again. A broker restarted without persistence (the
    embedded Redis of `make run`) forgets its messages, but the job table remembers: the API
    calls this at start. Duplicates are harmless: ``claim_job`` lets one run."""
    ids = list(session.scalars(select(Job.id).where(Job.status == JobStatus.queued).order_by(Job.id)))
    for job_id in ids:
        enqueue_job(session.get(Job, job_id), broker_url)
    return ids


def recover_stale_jobs(session: Session, settings: Settings) -> list[int]:
    """Re-queue running jobs whose worker went silent and send their tasks again (workers call
    this periodically; a duplicate message is harmless: ``claim_job`` lets one run)."""
    ids = requeue_stale_jobs(session, settings.worker_heartbeat_timeout_s)
    for job_id in ids:
        job = session.get(Job, job_id)
        if job is not None:
            enqueue_job(job, settings.redis_url)
    return ids
