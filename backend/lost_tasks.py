"""Queued jobs whose task message is gone: their task is sent again.

The job table is the truth and a task message only a nudge, but a nudge can be lost while the
job stays ``queued``: a worker's reaper killed between committing a stale job's return to the
queue and publishing its task (the kill storm caught this one), or a worker killed after taking
a message off the queue and before claiming its job (Redis keeps that message unacked and
invisible for the visibility timeout, hours). Workers would then idle beside a queued job.

An idle live worker takes a visible message within milliseconds, so a job that stays queued for
a whole grace period while such a worker could run it (its queue, enough processes) has lost its
message. The API's reaper sends that job's task again, at most once per grace period;
``claim_job`` makes a duplicate harmless. A job that waits because every able worker is busy is
left alone: its message is still in the queue, and sending more would only pile up duplicates.
"""
from __future__ import annotations

import time
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.celery_client import enqueue_job
from backend.jobs import JobStatus
from backend.models import Job, Worker
from backend.worker_registry import live_workers


def _can_run(worker: Worker, job: Job) -> bool:
    return job.queue in (worker.queues or []) and int(worker.gpus or 1) >= int(job.gpus or 1)


class LostTaskWatch:
    """Remembers since when each queued job (per attempt) has been left alone by an idle worker
    able to run it; ``resend`` sends the tasks of those left alone for ``grace_s``."""

    def __init__(self, grace_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace_s = grace_s
        self._clock = clock
        self._since: dict[tuple[int, int], float] = {}  # (job id, attempts) -> first seen left alone

    def overdue(self, session: Session, heartbeat_timeout_s: float) -> list[Job]:
        """The queued jobs an idle live worker able to run them has left alone for the grace period."""
        now = self._clock()
        idle = [w for w in live_workers(session, heartbeat_timeout_s) if w.current_job_id is None]
        queued = session.scalars(select(Job).where(Job.status == JobStatus.queued).order_by(Job.id))
        left_alone = {(j.id, j.attempts): j for j in queued if any(_can_run(w, j) for w in idle)}
        self._since = {key: self._since.get(key, now) for key in left_alone}
        return [job for key, job in left_alone.items() if now - self._since[key] >= self.grace_s]

    def resend(self, session: Session, heartbeat_timeout_s: float, broker_url: str) -> list[int]:
        """Send the tasks of the overdue jobs again, each then counted from now (one resend per
        grace period); their ids. EnqueueError when the broker is unreachable: the next round
        tries again."""
        sent: list[int] = []
        for job in self.overdue(session, heartbeat_timeout_s):
            enqueue_job(job, broker_url)
            self._since[(job.id, job.attempts)] = self._clock()
            sent.append(job.id)
        return sent
