"""The training / sampling child process (multiprocessing *spawn*, never fork after CUDA).

The child runs the engine and nothing else: it never touches the database. It reports through
a one-way pipe to the supervising task thread as ``(kind, payload)`` tuples:

    ("progress", {step, total, loss, lr, grad_norm, it_s, eta_s, ...})   throttled, ~5/s
    ("metrics", {"step": int, "metrics": {...}})
    ("start", {"step": int, "total": int, "resumed_from": str | None})
    ("phase", {"phase": str, "done": int | None, "total": int | None})  a phase began / its count moved
    ("run_info", {"device": str, "precision": str, "precision_reason": str, ...})  once per start
    ("samples", {"step": int | None, "files": [{index, volume_path, preview_path, shape}, ...]})
    ("checkpoint", {"step": int, "path": str})
    ("result", {"stopped": bool, ...})  last message of a run that ended or stopped on request
    ("error", {"reason": str})                                           last message of a failed run

The child is started ahead of its job (``worker.child_pool``): it imports the engine, then waits
for its run spec on ``spec_conn``, so a claimed job does not wait for a process start and torch.

It stops when ``stop_event`` is set (the trainer's ``should_stop`` reads it every step and writes
a checkpoint first), and it exits on its own when its parent (the worker) disappears, so a
SIGKILLed worker never leaves an orphan training on the GPU.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Union

from backend.jobs import JobKind
from backend.run_spec import FinetuneRunSpec, RunSpec, SampleRunSpec, StudyRunSpec, TrainRunSpec

log = logging.getLogger("worker.runner")

PROGRESS_MIN_INTERVAL_S = 0.2
PHASE_COUNT_MIN_INTERVAL_S = 0.5  # "checking files n/N" updates; a new phase is sent at once
PARENT_POLL_S = 0.5
# Tests only: "<phase>:<seconds>" makes the child sleep when that phase begins (a stalled engine).
STALL_HOOK_ENV = "WORKER_TEST_STALL_IN_PHASE"


def _plain(value: Any) -> Any:
    """JSON-ready copy of what the engine reports (tensors, numpy scalars, paths, NaN)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):  # the engine's ProgressInfo / SampleFile dataclasses
        return _plain(value.to_dict())
    if isinstance(value, int):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:  # torch / numpy scalars
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int):
        return value
    return str(value)


class PipeCallbacks:
    """The engine's callbacks object, forwarding everything to the parent through the pipe."""

    def __init__(self, conn: Connection, stop_event) -> None:
        self._conn = conn
        self._stop = stop_event
        self._last_progress = 0.0
        self._pending: dict | None = None
        self._phase: str | None = None
        self._last_phase = 0.0
        self._lock = threading.Lock()  # the engine may call from a data thread; sends must not interleave

    def send(self, kind: str, payload: dict) -> None:
        with self._lock:
            self._conn.send((kind, _plain(payload)))

    def on_start(self, step: int, total: int, resumed_from) -> None:
        self.send("start", {"step": int(step), "total": int(total),
                            "resumed_from": str(resumed_from) if resumed_from else None})

    def on_run_info(self, info: dict) -> None:
        self.send("run_info", dict(info))

    def on_phase(self, phase: str, done: int | None = None, total: int | None = None) -> None:
        now = time.monotonic()
        if (phase != self._phase or done is None or done == total
                or now - self._last_phase >= PHASE_COUNT_MIN_INTERVAL_S):
            self._phase, self._last_phase = phase, now
            self.flush_progress()
            self.send("phase", {"phase": phase, "done": done, "total": total})
            _stall_hook(phase, done)

    def on_progress(self, info) -> None:
        now = time.monotonic()
        self._pending = _plain(info)
        if now - self._last_progress >= PROGRESS_MIN_INTERVAL_S:
            self.flush_progress()

    def flush_progress(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._last_progress = time.monotonic()
            self.send("progress", pending)

    def on_metrics(self, step: int, metrics: dict) -> None:
        self.flush_progress()
        self.send("metrics", {"step": int(step), "metrics": dict(metrics)})

    def on_samples(self, step: int, files) -> None:
        # files: the engine's SampleFile records (index, volume_path, preview_path, shape)
        self.send("samples", {"step": None if step is None else int(step), "files": list(files)})

    def on_checkpoint(self, step: int, path) -> None:
        self.send("checkpoint", {"step": int(step), "path": str(path)})

    def should_stop(self) -> bool:
        return self._stop.is_set()


def _stall_hook(phase: str, done: int | None) -> None:
    hook = os.environ.get(STALL_HOOK_ENV, "")
    if hook and done is None and hook.rpartition(":")[0] == phase:
        time.sleep(float(hook.rpartition(":")[2]))


def _make_callbacks(conn: Connection, stop_event) -> PipeCallbacks:
    """PipeCallbacks on top of the engine's TrainCallbacks, so hooks we do not forward stay no-ops."""
    from ddpm.train.callbacks import TrainCallbacks

    cls = type("WorkerCallbacks", (PipeCallbacks, TrainCallbacks), {})
    return cls(conn, stop_event)


def _die_with_parent(parent_pid: int) -> None:
    """Linux: the kernel SIGKILLs us the moment the worker dies (PR_SET_PDEATHSIG).

    PDEATHSIG fires when the *thread* that spawned us exits; that is the supervising task
    thread, which lives exactly as long as we do, so it never fires early. The check after
    setting it covers a worker that died before we got here; the polling thread in
    ``_watch_parent`` is the fallback where prctl is unavailable.
    """
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(70)


def _watch_parent(parent_pid: int) -> None:
    """Exit at once when the worker is gone (re-parented): its lease will expire and another
    worker resumes from the last checkpoint; a second copy of this run must not go on."""
    while True:
        if os.getppid() != parent_pid:
            os._exit(70)
        time.sleep(PARENT_POLL_S)


def _log_to_file(log_path: Union[str, Path]) -> None:
    """Send this process's stdout/stderr (Python and native) and logging to the job log."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _export(spec: TrainRunSpec) -> str:
    """The (EMA) weights where GET /api/jobs/{id}/checkpoint serves them (backend.storage)."""
    from ddpm.export import export_run

    export = spec.paths.export_path
    export.parent.mkdir(parents=True, exist_ok=True)
    export_run(spec.paths.run_dir, export, use_ema=spec.config.model.use_ema)
    return str(export)


def _run_train(spec: TrainRunSpec, cb: PipeCallbacks) -> dict:
    from worker.rank_loop import run_loop  # here, or torchrun's processes with rank 0 reporting

    result = run_loop(spec, cb)
    if result.status == "stopped":
        out = {"stopped": True, "step": result.step}
        try:  # a cancelled run's weights are downloadable too; never fail the cancel over it
            out["export_path"] = _export(spec)
        except Exception:  # noqa: BLE001
            log.exception("export after stop failed")
        return out
    cb.on_phase("writing")
    return {"stopped": False, "step": result.step, "export_path": _export(spec)}


def _run_sample(spec: SampleRunSpec, cb: PipeCallbacks) -> dict:
    from ddpm.sample import sample_run

    started = time.monotonic()

    def progress(i: int, n: int) -> None:
        elapsed = time.monotonic() - started
        frac = i / n if n else 1.0
        cb.on_progress({"step": i, "total": n, "eta_s": elapsed / frac - elapsed if frac > 0 else None})

    p = spec.params
    cb.on_phase("sampling")
    files = sample_run(spec.source_run_dir, num=p.num_samples, sampler=p.sampler, steps=p.steps, seed=p.seed,
                       out_dir=spec.paths.samples_dir, progress=progress, device=spec.device)
    cb.flush_progress()
    cb.on_samples(None, files)
    return {"stopped": False, "num_samples": p.num_samples}


def _run_finetune(spec: FinetuneRunSpec, cb: PipeCallbacks) -> dict:
    from worker.finetune_run import finish_finetune_job
    from worker.rank_loop import run_loop  # the loop as a train job's: here, or spec.nproc ranks

    return finish_finetune_job(spec, run_loop(spec, cb), cb)


def _run_study(spec: StudyRunSpec, cb: PipeCallbacks) -> dict:
    from worker.finetune_run import run_study_job

    return run_study_job(spec, cb)


_RUNS = {JobKind.train: _run_train, JobKind.sample: _run_sample, JobKind.finetune: _run_finetune,
         JobKind.study: _run_study}


# What every job needs, cheapest first; a spare child stops preloading when its job arrives
# (the job then imports the rest itself, only what it needs). torch._dynamo: a job's first
# optimizer imports it, seconds on a busy CPU.
PRELOAD = ("torch", "ddpm.sample", "ddpm.train", "torch._dynamo")


def _preload(spec_conn: Connection) -> None:
    """Import the engine ahead of the job while none is waiting. Never CUDA: a GPU is
    initialised by the job that uses it."""
    import importlib

    try:
        for name in PRELOAD:
            if spec_conn.poll(0):
                return
            importlib.import_module(name)
        if not spec_conn.poll(0):
            from ddpm.nn import kernels

            kernels.available()  # loads the built CPU kernels (a job would otherwise load them)
    except Exception:  # noqa: BLE001 - the job imports them again and reports what fails
        log.exception("preloading the engine failed")


def child_main(spec_conn: Connection, conn: Connection, stop_event, parent_pid: int) -> None:
    """Entry point of the spawned child: preload, wait for a run spec on ``spec_conn`` (EOF: no
    job, exit), run it. Exit code 0 after a result message, 1 after failure."""
    _die_with_parent(parent_pid)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="watch-parent").start()
    _preload(spec_conn)
    try:
        spec: RunSpec = spec_conn.recv()
    except (EOFError, OSError):
        os._exit(0)  # the worker kept us spare and stopped: there is no job
    spec_conn.close()
    _log_to_file(spec.paths.log_path)
    cb = _make_callbacks(conn, stop_event)
    log.info("job %s: %s starting in pid %s", spec.job_id, spec.kind, os.getpid())
    try:
        result = _RUNS[spec.kind](spec, cb)
        cb.flush_progress()
        cb.send("result", result)
        log.info("job %s: %s", spec.job_id, "stopped on request" if result["stopped"] else "done")
        code = 0
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the job row
        from worker.failures import reason_for

        traceback.print_exc()
        reason = reason_for(exc, str(spec.paths.data_dir))
        log.error("job %s failed: %s", spec.job_id, reason)
        try:
            cb.send("error", {"reason": reason})
        except (BrokenPipeError, OSError):
            pass
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    conn.close()
    # os._exit: skip interpreter teardown (CUDA / data-loader threads can hang it); the log is flushed.
    os._exit(code)
