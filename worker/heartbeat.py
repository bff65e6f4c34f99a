"""The heartbeat thread: keeps this worker's row and its job's lease fresh, and reaps others.

Every ``interval`` seconds it upserts the worker row (name, queues, device, GPUs, current job) and
renews the current job's lease; then it re-queues running jobs whose worker has been silent
longer than WORKER_HEARTBEAT_TIMEOUT_S and re-sends their tasks (every worker does this, and the
backend's conditional UPDATE lets exactly one of them re-queue a given job).

Fencing: the supervisor asks ``lease_ok`` every loop. A lease the database says is gone, or one
we could not renew for 3/4 of the timeout (the database unreachable, the process stalled), means
another worker may soon claim the job, so our child is killed before that can happen.
"""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

from ddpm.precision_rules import cpu_facts

log = logging.getLogger("worker.heartbeat")

FENCE_FRACTION = 0.75


# The GPU's facts come from the engine's own probe, run once in a throwaway process: the worker
# never initialises CUDA itself (see worker_settings._count_cuda_devices).
_CUDA_PROBE = ("import dataclasses, json, torch; from ddpm.precision import device_facts; "
               "print(json.dumps(dataclasses.asdict(device_facts(torch.device('cuda', 0)))))")


def _cuda_facts() -> Optional[dict[str, Any]]:
    try:
        out = subprocess.run([sys.executable, "-c", _CUDA_PROBE], capture_output=True, text=True,
                             timeout=120, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, OSError, ValueError, IndexError) as exc:
        log.warning("could not probe the GPU's precision facts: %s", exc)
        return None


def local_precision_facts(has_gpu: bool = False, cpuinfo: str = "/proc/cpuinfo") -> dict[str, Any]:
    """This machine as the precision rule sees it: ``{"cpu": DeviceFacts as a dict}`` read
    torch-free from /proc/cpuinfo (the worker process never imports torch), plus ``"cuda"`` on a
    GPU worker. The API warns at submit when bf16 is asked and every worker of the job's queue
    only emulates it."""
    facts: dict[str, Any] = {}
    if has_gpu and (cuda := _cuda_facts()) is not None:
        facts["cuda"] = cuda
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return facts
    flags: list[str] = []
    name = "unknown model"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "flags" and not flags:
            flags = value.split()
        elif key == "model name" and name == "unknown model":
            name = value.strip()
    return {**facts, "cpu": asdict(cpu_facts(flags, name))}


class Heartbeat:
    def __init__(self, store: Any, settings: Any) -> None:
        self.store = store
        self.settings = settings
        self._lock = threading.Lock()
        self._current: Optional[int] = None
        self._lost: bool = False
        self._last_ok = time.monotonic()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.beats = 0
        self.precision_facts = local_precision_facts(settings.device.has_gpu)

    # the task thread ----------------------------------------------------------------------
    def begin(self, job_id: int) -> None:
        """The job was just claimed: the claim itself renewed the lease."""
        with self._lock:
            self._current, self._lost, self._last_ok = job_id, False, time.monotonic()
        self.beat_now()

    def end(self, job_id: int) -> None:
        with self._lock:
            if self._current == job_id:
                self._current = None
        self.beat_now()

    def lease_ok(self, job_id: int) -> bool:
        with self._lock:
            if self._current != job_id or self._lost:
                return False
            return time.monotonic() - self._last_ok < self.settings.heartbeat_timeout_s * FENCE_FRACTION

    # the thread ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def beat_now(self) -> None:
        """One heartbeat; errors are logged (the fence handles a database that stays away)."""
        with self._lock:
            current = self._current
        started = time.monotonic()
        try:
            state = self.store.heartbeat(self.settings.name, self.settings.queues,
                                         self.settings.device.label, current, self.precision_facts,
                                         self.settings.nproc)
        except Exception as exc:  # noqa: BLE001 - a heartbeat must never kill the thread
            log.warning("heartbeat failed: %s", exc)
            return
        with self._lock:
            self.beats += 1
            if current is not None and self._current == current:
                if state is not None and not state.held:
                    self._lost = True
                else:
                    self._last_ok = started

    def reap(self) -> list[int]:
        try:
            ids = self.store.recover_stale()
        except Exception as exc:  # noqa: BLE001
            log.warning("recovering stale jobs failed: %s", exc)
            return []
        if ids:
            log.warning("re-queued jobs %s: their worker stopped heartbeating", ids)
        return ids

    def _run(self) -> None:
        interval = self.settings.heartbeat_interval_s
        while not self._stop.is_set():
            self.beat_now()
            self.reap()
            self._stop.wait(interval)
