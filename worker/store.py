"""The worker's window on the database and DATA_DIR: backend persistence calls only, no SQL.

One ``Store`` per worker process. Every method opens its own short session (the task thread
and the heartbeat thread call it concurrently) and commits through the backend function.
"""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from backend import jobs as jobs_mod
from backend import leases, reporting, worker_registry
from backend.celery_client import enqueue_job, recover_stale_jobs
from backend.db import open_database
from backend.events import REDIS_URL_KEY
from backend.settings import Settings, get_settings
from backend.storage import Storage

log = logging.getLogger("worker.store")


@dataclass(frozen=True)
class JobView:
    """What a task needs of a job row (plain values: rows do not cross threads)."""

    id: int
    kind: str
    status: str
    device: str  # auto / cpu / gpu, as asked
    queue: str
    config: dict
    dataset_id: Optional[int]
    source_job_id: Optional[int]
    attempts: int
    cancel_requested: bool
    gpus: int = 1  # processes the job runs as


def _view(job: Any) -> JobView:
    return JobView(id=job.id, kind=job.kind, status=job.status, device=job.device, queue=job.queue,
                   config=dict(job.config or {}), dataset_id=job.dataset_id,
                   source_job_id=job.source_job_id, attempts=job.attempts,
                   cancel_requested=bool(job.cancel_requested), gpus=int(job.gpus or 1))


class Store:
    def __init__(self, settings: Optional[Settings] = None) -> None:
        self.settings = settings or get_settings()
        self.storage = Storage(self.settings.resolved_data_dir)
        self.storage.ensure()
        self._factory = open_database(self.settings)

    def session(self):
        s = self._factory()
        # events.publish_event wakes SSE listeners through Redis after commit
        s.info.setdefault(REDIS_URL_KEY, self.settings.redis_url)
        return s

    # jobs ----------------------------------------------------------------------------------
    def get_job(self, job_id: int) -> Optional[JobView]:
        with self.session() as s:
            try:
                return _view(jobs_mod.get_job(s, job_id))
            except jobs_mod.JobNotFound:
                return None

    def claim(self, job_id: int, worker_name: str) -> bool:
        with self.session() as s:
            return leases.claim_job(s, job_id, worker_name, self.settings.worker_heartbeat_timeout_s)

    def cancel_requested(self, job_id: int) -> bool:
        job = self.get_job(job_id)
        return job is None or job.cancel_requested

    def finish(self, job_id: int, worker_name: str, status: str, error: Optional[str] = None) -> bool:
        with self.session() as s:
            return jobs_mod.finish_job(s, job_id, worker_name, status, error)

    def release(self, job_id: int, worker_name: str) -> bool:
        """running -> queued for a job this worker gives back (it is shutting down after a
        checkpoint), then its task again so the next free worker resumes it."""
        with self.session() as s:
            if not leases.release_job(s, job_id, worker_name):
                return False
            enqueue_job(jobs_mod.get_job(s, job_id), self.settings.redis_url)
            return True

    # reporting -----------------------------------------------------------------------------
    def progress(self, job_id: int, step: int, total: int, it_s: Optional[float], eta_s: Optional[float],
                 loss: Optional[float] = None) -> None:
        with self.session() as s:
            reporting.report_progress(s, job_id, step, total, it_s, eta_s, loss)

    def phase(self, job_id: int, phase: str, done: Optional[int], total: Optional[int]) -> None:
        with self.session() as s:
            reporting.report_phase(s, job_id, phase, done, total)

    def run_info(self, job_id: int, info: dict) -> None:
        with self.session() as s:
            reporting.report_run_info(s, job_id, info)

    def metrics(self, job_id: int, step: int, values: dict) -> None:
        with self.session() as s:
            reporting.add_metrics(s, job_id, step, values)

    def sample(self, job_id: int, index: int, shape, volume_path: Optional[str],
               preview_path: Optional[str], step: Optional[int]) -> None:
        with self.session() as s:
            reporting.add_sample(s, self.storage, job_id, index, shape, volume_path, preview_path, step)

    def metric_steps(self, job_id: int) -> set[int]:
        with self.session() as s:
            return reporting.metric_steps(s, job_id)

    def discard_after(self, job_id: int, step: int) -> None:
        """A run resumed at ``step``: metric and sample rows of later steps (written before a
        crash, after the last checkpoint) are about to be written again. Their files stay: the
        resumed run rewrites the same names."""
        with self.session() as s:
            reporting.discard_after(s, job_id, step)

    def checkpoint(self, job_id: int, step: int) -> None:
        with self.session() as s:
            reporting.set_checkpoint(s, job_id, step)

    # workers -------------------------------------------------------------------------------
    def heartbeat(self, name: str, queues, device: str, current_job_id: Optional[int],
                  precision_facts: Optional[dict] = None, gpus: int = 1):
        with self.session() as s:
            return leases.heartbeat(s, name, queues=tuple(queues), device=device,
                                    current_job_id=current_job_id, hostname=socket.gethostname(),
                                    pid=os.getpid(), precision_facts=precision_facts, gpus=gpus)

    def remove_worker(self, name: str) -> None:
        with self.session() as s:
            worker_registry.remove_worker(s, name)

    def recover_stale(self) -> list[int]:
        """Re-queue running jobs whose worker went silent and re-send their tasks."""
        with self.session() as s:
            return recover_stale_jobs(s, self.settings)

    # paths ---------------------------------------------------------------------------------
    def log_path(self, job_id: int) -> Path:
        return self.storage.job_log_path(job_id)
