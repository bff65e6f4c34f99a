"""Run one claimed job: spawn the engine child, relay its reports, watch cancel and the lease.

The task thread owns the job while the child runs. It polls the child's pipe (reports become
rows + events through worker.report_relay), the job's cancel flag (~every poll_interval_s), the
worker's shutdown flag and the lease. Outcomes:

- child reports a result            -> succeeded, or cancelled when it stopped on request
- cancel/shutdown and no stop within cancel_grace_s -> child killed; cancelled / re-queued
- child reports a failure           -> failed with its one-line reason
- child dies without a word         -> failed with the exit code / signal explained
- lease lost (another worker may own the job now) -> child killed, nothing more written
- no report and no log output for the phase's stall budget -> child killed; failed, naming the phase

The child comes from the worker's ``ChildPool`` (started ahead, engine imported).
"""
from __future__ import annotations

import enum
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from backend.jobs import JobStatus
from backend.run_spec import RunSpec
from worker.failures import reason_for_exit
from worker.joblog import append_log

log = logging.getLogger("worker.supervisor")



class Stop(enum.Enum):
    NONE = "none"
    CANCEL = "cancel"  # the user asked (job ends cancelled)
    SHUTDOWN = "shutdown"  # the worker is stopping (job goes back to the queue)


class Handover(enum.StrEnum):
    """Endings that are not a job status of their own."""

    REQUEUE = "requeue"  # the worker is stopping: the job goes back to the queue
    ABANDONED = "abandoned"  # the lease is gone: another worker owns the job now


@dataclass
class Outcome:
    status: Union[JobStatus, Handover]
    error: Optional[str] = None
    result: dict = field(default_factory=dict)


class Supervisor:
    """Supervise one child for one job. ``ctx`` is the worker's runtime (store, settings, flags)."""

    def __init__(self, ctx: Any, spec: RunSpec, reporter: Any) -> None:
        self.ctx = ctx
        self.job_id = spec.job_id
        self.spec = spec
        self.reporter = reporter
        self.settings = ctx.settings
        self.log_path = spec.paths.log_path

    def _note(self, msg: str) -> None:
        log.info("job %s: %s", self.job_id, msg)
        append_log(self.log_path, f"[worker {self.settings.name}] {msg}")

    def run(self) -> Outcome:
        self.reporter.handle("phase", {"phase": "starting"})  # the page says so from the claim on
        pool = self.ctx.children
        started = pool.take()
        child, recv = started.process, started.reports
        started.start_job(self.spec)
        self._note(f"started {self.spec.kind} in child pid {child.pid} on {self.spec.device}")
        try:
            return self._watch(child, recv, started.stop_event)
        finally:
            if child.is_alive():
                child.kill()
            child.join(5)
            recv.close()
            pool.refill()

    def _stalled(self, phase: str, last_report: float) -> Optional[str]:
        """The one-line reason when the child has been silent (no report, no log output) for
        longer than the phase's budget; None while it is not."""
        budget = self.settings.stall_budget_s(phase)
        silent = time.monotonic() - last_report
        if silent <= budget:
            return None
        try:  # output in the log counts as life (a slow step that prints, a build)
            silent = min(silent, time.time() - os.stat(self.log_path).st_mtime)
        except OSError:
            pass
        if silent <= budget:
            return None
        return (f"stalled in phase '{phase}': no progress, phase or log output for {silent:.0f}s "
                f"(limit {budget:g}s, WORKER_STALL_TIMEOUT_S / WORKER_STALL_PHASE_TIMEOUTS_S); "
                "the run was killed")

    def _watch(self, child, recv, stop_event) -> Outcome:
        stop = Stop.NONE
        deadline: Optional[float] = None
        final: Optional[tuple[str, dict]] = None
        next_poll = 0.0
        killed = False
        eof = False
        phase, last_report = "starting", time.monotonic()
        while True:
            # 1. drain reports (short wait doubles as the loop's sleep)
            if not eof:
                try:
                    # wait a little for the first report, then drain what is there (bounded, so
                    # a chatty child never starves the cancel / lease checks below)
                    budget = 200 if recv.poll(0.1) else 0
                    while budget and recv.poll(0):
                        budget -= 1
                        kind, payload = recv.recv()
                        last_report = time.monotonic()
                        if kind == "phase":
                            phase = str(payload.get("phase") or phase)
                            if phase in ("training", "sampling"):
                                # set up: the next job's child may import now without slowing
                                # this job's start, and is ready when this job ends
                                self.ctx.children.refill()
                        if kind in ("result", "error"):
                            final = (kind, payload)
                            if payload.get("step") is not None:
                                self.reporter.advance(int(payload["step"]))
                        else:
                            self.reporter.handle(kind, payload)
                except (EOFError, OSError):
                    eof = True
            else:
                time.sleep(0.05)
            if eof and not child.is_alive():
                break
            if eof and final is not None:
                child.join(10)  # it exits right after its last message
                break
            if not child.is_alive() and not recv.poll(0):
                eof = True
                continue
            now = time.monotonic()
            # 2. the lease: if we cannot prove we still own the job, stop touching it at once
            if not self.ctx.lease_ok(self.job_id):
                self._note("lost the job's lease (heartbeats failed); stopping the child, "
                           "another worker resumes from the last checkpoint")
                child.kill()
                child.join(10)
                return Outcome(Handover.ABANDONED)
            self.reporter.tick()
            stalled = self._stalled(phase, last_report) if final is None else None
            if stalled is not None:
                self._note(stalled)
                child.kill()
                child.join(10)
                self.reporter.flush()
                return Outcome(JobStatus.failed, error=stalled)
            # 3. cancel / shutdown requests
            if stop is Stop.NONE and now >= next_poll:
                next_poll = now + self.settings.poll_interval_s
                if self.ctx.shutting_down.is_set():
                    stop = Stop.SHUTDOWN
                elif self.ctx.store.cancel_requested(self.job_id):
                    stop = Stop.CANCEL
                if stop is not Stop.NONE:
                    stop_event.set()
                    deadline = now + self.settings.cancel_grace_s
                    self._note(f"{'cancel requested' if stop is Stop.CANCEL else 'worker shutting down'}: "
                               f"asking the run to checkpoint and stop "
                               f"(killed after {self.settings.cancel_grace_s:g}s)")
            if deadline is not None and now > deadline and child.is_alive():
                self._note(f"the run did not stop within {self.settings.cancel_grace_s:g}s: killing it; "
                           "resume continues from its last periodic checkpoint")
                child.kill()
                child.join(10)
                killed = True
                break
        self.reporter.flush()
        return self._outcome(child, final, stop, killed)

    def _outcome(self, child, final, stop: Stop, killed: bool) -> Outcome:
        stopped = Handover.REQUEUE if stop is Stop.SHUTDOWN else JobStatus.cancelled
        if final is not None and final[0] == "result":
            result = final[1]
            if not result.get("stopped"):
                return Outcome(JobStatus.succeeded, result=result)
            return Outcome(stopped, result=result)
        if final is not None and final[0] == "error":
            return Outcome(JobStatus.failed, error=final[1].get("reason") or "failed (see the job log)")
        if killed or stop is not Stop.NONE:
            return Outcome(stopped)
        return Outcome(JobStatus.failed, error=reason_for_exit(child.exitcode))
