"""Process-wide state of one worker and its Celery lifecycle hooks.

``configure`` (from worker.main) fixes the settings; the ``worker_ready`` signal opens the store,
starts the heartbeat thread and recovers jobs lost by dead workers; ``worker_shutting_down``
(SIGTERM / Ctrl-C) asks a running job to checkpoint and go back to the queue; ``worker_shutdown``
removes this worker from the live list.
"""
from __future__ import annotations

import logging
import threading
from typing import Optional

from celery import signals

from worker.heartbeat import Heartbeat
from worker.worker_settings import WorkerSettings, load_settings

log = logging.getLogger("worker.runtime")


class Runtime:
    def __init__(self, settings: WorkerSettings) -> None:
        from worker.child_pool import ChildPool
        from worker.store import Store

        self.settings = settings
        self.store = Store()
        self.heartbeat = Heartbeat(self.store, settings)
        self.shutting_down = threading.Event()
        self.children = ChildPool(settings.warm_child)

    def lease_ok(self, job_id: int) -> bool:
        return self.heartbeat.lease_ok(job_id)

    def start(self) -> None:
        self.heartbeat.beat_now()
        ids = self.heartbeat.reap()  # jobs of workers that died while none was running
        log.info("worker %s ready: device %s, queues %s; re-queued %s",
                 self.settings.name, self.settings.device.label, ",".join(self.settings.queues), ids)
        self.heartbeat.start()
        self.children.refill()  # the first job's child, engine imported, before the first claim

    def stop(self) -> None:
        self.children.close()
        self.heartbeat.stop()
        try:
            self.store.remove_worker(self.settings.name)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not remove worker row: %s", exc)


_settings: Optional[WorkerSettings] = None
_runtime: Optional[Runtime] = None
_lock = threading.Lock()


def configure(settings: WorkerSettings) -> None:
    global _settings
    _settings = settings


def get() -> Runtime:
    """The worker's runtime (created on first use, e.g. under ``celery -A worker.celery_app``)."""
    global _runtime, _settings
    with _lock:
        if _runtime is None:
            _runtime = Runtime(_settings or load_settings())
        return _runtime


@signals.worker_ready.connect
def _on_worker_ready(**_kw) -> None:
    # After the consumer is up: a worker listed by GET /api/workers really takes jobs.
    get().start()


@signals.worker_shutting_down.connect
def _on_shutting_down(**_kw) -> None:
    # Runs in the signal handler: only set a flag; the task thread does the work.
    if _runtime is not None:
        _runtime.shutting_down.set()


@signals.worker_shutdown.connect
def _on_shutdown(**_kw) -> None:
    if _runtime is not None:
        _runtime.stop()
