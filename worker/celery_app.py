"""The Celery application of the workers (broker: REDIS_URL from the backend settings).

Settings for long GPU jobs: one task at a time per worker, nothing reserved ahead (a queued job
must stay free for an idle worker), acks after the task (a worker lost mid-job leaves its message
for recovery), and a threads pool so the worker keeps answering pings and control commands while
the task thread supervises a training child. No result backend: the job table is the truth.
"""
from __future__ import annotations

from celery import Celery

from backend.dispatch import Queue
from backend.settings import get_settings

# A message not acked within this time is handed to another worker by Redis. Training runs for
# hours, so a redelivery of a running job is normal: the task sees the job is not claimable and
# acks it. Lost workers are recovered by the heartbeat reaper, not by this timeout.
VISIBILITY_TIMEOUT_S = 12 * 3600


def make_app(broker_url: str | None = None) -> Celery:
    app = Celery("ddpm_worker", broker=broker_url or get_settings().redis_url,
                 include=["worker.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=True,  # Redis only: reserve nothing beyond the running task
        worker_concurrency=1,
        worker_pool="threads",
        task_ignore_result=True,
        result_backend=None,
        task_default_queue=Queue.cpu.value,
        task_track_started=False,
        task_time_limit=None,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        worker_hijack_root_logger=True,
        worker_send_task_events=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_serializer="json",
        accept_content=["json"],
    )
    return app


app = make_app()
