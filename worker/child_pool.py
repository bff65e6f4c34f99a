"""Engine children started before their jobs: a claimed job finds torch already imported.

A job's child is a *spawned* process (never forked: the worker may hold sockets, and CUDA does
not survive a fork). Spawning one and importing torch and the engine takes seconds, which a job
used to spend at 0% after its claim. The pool keeps one spare child that has done that work and
waits for its run spec (``worker.runner.child_main``); a job takes it, and the supervisor asks
for the next spare once that job's set-up is done (it reached "training" or "sampling"), so the
import does not compete with the job's own start for the cores, and a job queued behind it
finds its child ready. The spare never initialises CUDA before it has a job.

Every child is started by the pool's own thread, which lives as long as the worker: the kernel
kills a child when the *thread* that started it exits (``PR_SET_PDEATHSIG`` in the runner), so
no child may be started by a thread that ends before it does.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Optional

from worker import runner

log = logging.getLogger("worker.child_pool")

_SPAWN = mp.get_context("spawn")
START_TIMEOUT_S = 120.0


@dataclass
class Child:
    process: Any  # multiprocessing.Process
    reports: Connection  # child -> worker: (kind, payload) reports
    spec_conn: Connection  # worker -> child: the run spec, once
    stop_event: Any  # set: checkpoint and stop

    def start_job(self, spec: Any) -> None:
        self.spec_conn.send(spec)
        self.spec_conn.close()

    def discard(self) -> None:
        """A child that will get no job: closing its spec pipe makes it exit; kill to be sure."""
        for conn in (self.spec_conn, self.reports):
            conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)


def _start_child() -> Child:
    reports, send = _SPAWN.Pipe(duplex=False)
    spec_recv, spec_conn = _SPAWN.Pipe(duplex=False)
    stop_event = _SPAWN.Event()
    process = _SPAWN.Process(target=runner.child_main, name="ddpm-job-child",
                             args=(spec_recv, send, stop_event, os.getpid()), daemon=False)
    process.start()
    send.close()  # only the child writes; EOF on ``reports`` then means the child is gone
    spec_recv.close()
    return Child(process, reports, spec_conn, stop_event)


class ChildPool:
    """``take()`` a child for a job; with ``warm`` one spare is kept ready for the next job."""

    def __init__(self, warm: bool = True) -> None:
        self.warm = warm
        self._cond = threading.Condition()
        self._spare: Optional[Child] = None
        self._spare_coming = False
        self._closed = False
        self._requests: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="child-pool", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            request = self._requests.get()
            if request is None:
                return
            try:
                child: Optional[Child] = _start_child()
            except Exception as exc:  # noqa: BLE001 - take() starts one itself or reports it
                log.warning("could not start an engine child: %s", exc)
                child = None
            if isinstance(request, queue.Queue):  # take() waits for this one
                request.put(child)
                continue
            with self._cond:
                self._spare_coming = False
                if self._closed or self._spare is not None:
                    if child is not None:
                        child.discard()
                else:
                    self._spare = child
                self._cond.notify_all()

    def refill(self) -> None:
        """Start the next spare (after a job ended, and at worker start)."""
        with self._cond:
            if not self.warm or self._closed or self._spare is not None or self._spare_coming:
                return
            self._spare_coming = True
        self._requests.put("spare")

    def take(self) -> Child:
        """The spare if there is a live one (waiting for one being started), else a new child."""
        with self._cond:
            self._cond.wait_for(lambda: not self._spare_coming, timeout=START_TIMEOUT_S)
            child, self._spare = self._spare, None
        if child is not None and child.process.is_alive():
            return child
        if child is not None:
            log.warning("the spare engine child exited (code %s); starting another", child.process.exitcode)
            child.discard()
        box: queue.Queue = queue.Queue(1)
        self._requests.put(box)
        started = box.get(timeout=START_TIMEOUT_S)
        if started is None:
            raise RuntimeError("could not start the engine child (see the worker log)")
        return started

    def close(self) -> None:
        with self._cond:
            self._closed = True
            child, self._spare = self._spare, None
        if child is not None:
            child.discard()
        self._requests.put(None)
