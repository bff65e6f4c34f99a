"""How many processes a job may ask for: the largest live worker of its queue decides.

A job runs as ``gpus`` processes on ONE worker (torchrun in the worker's child, one process per
GPU; CPU processes on a CPU worker). A worker declares what it holds in its heartbeat
(``workers.gpus``: its visible GPUs, or WORKER_NPROC on a CPU worker). A job no live worker of its
queue can hold would wait forever, so the API refuses it at submit with the numbers. A one-process
job is never refused here: it waits for a worker of its queue as it always has.
"""
from __future__ import annotations

from typing import Optional

from sqlalchemy.orm import Session

from backend.worker_registry import live_workers


def largest_worker(session: Session, queue: str, timeout_s: float) -> Optional[int]:
    """The most processes one live worker serving ``queue`` holds; None when none serves it."""
    sizes = [int(w.gpus or 1) for w in live_workers(session, timeout_s) if queue in (w.queues or [])]
    return max(sizes) if sizes else None


def capacity_problem(session: Session, queue: str, gpus: int, timeout_s: float) -> Optional[str]:
    """Why no live worker can run a job of ``gpus`` processes on ``queue``; None when one can."""
    if gpus <= 1:
        return None
    largest = largest_worker(session, queue, timeout_s)
    if largest is None:
        return (f"gpus {gpus} but no live worker serves queue {queue}; start a worker that holds "
                f"{gpus} (its GPUs, or WORKER_NPROC={gpus} on a CPU worker)")
    if largest < gpus:
        return f"gpus {gpus} but the largest live worker on queue {queue} has {largest}"
    return None
