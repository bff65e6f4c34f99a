"""Start one worker: ``python -m worker`` (one per GPU).

Its environment is described in ``worker/worker_settings.py`` (besides the backend's DATA_DIR,
DATABASE_URL, REDIS_URL and WORKER_HEARTBEAT_TIMEOUT_S).
"""
from __future__ import annotations

import os
import socket
import sys

from worker import runtime
from ddpm.allocator import preload_tcmalloc
from worker.worker_settings import load_settings


def celery_argv(name: str, queues: tuple[str, ...], loglevel: str) -> list[str]:
    return [
        "worker",
        "--pool=threads", "--concurrency=1",  # one job at a time; the main thread answers pings
        "--prefetch-multiplier=1",
        f"--queues={','.join(queues)}",
        f"--hostname=ddpm-{name}@{socket.gethostname()}",
        "--without-mingle", "--without-gossip",  # fast start; workers coordinate through the DB
        f"--loglevel={loglevel}",
    ]


def main(argv: list[str] | None = None) -> None:
    # The engine children inherit this. OpenMP threads that spin while they wait steal the cores
    # from the other processes sharing them (API, Redis, this worker); it must be set before torch
    # loads OpenMP. Measured in bench/RESULTS.md (the ddpm/cli.py row).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    preload = preload_tcmalloc()  # for the engine children; see ddpm/allocator.py
    settings = load_settings()
    runtime.configure(settings)
    from worker.celery_app import app  # after configure: importing the app reads backend settings

    print(f"worker {settings.name}: device {settings.device.label}, queues {','.join(settings.queues)}, "
          f"heartbeat every {settings.heartbeat_interval_s:g}s (timeout {settings.heartbeat_timeout_s:g}s), "
          f"engine allocator {preload or 'system malloc'}",
          file=sys.stderr, flush=True)
    app.worker_main(celery_argv(settings.name, settings.queues, settings.loglevel) + list(argv or sys.argv[1:]))
