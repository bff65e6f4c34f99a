"""SIGKILL at any instant of a job's first seconds ends in a finished job (issue 16 item 1, with
the kernel-lock fix of issue 13).

One job, one worker slot. For each ``Instant`` in turn the worker is (re)started with that
instant's environment, the job's next attempt is claimed, the worker is SIGKILLed at the instant
(a time after the claim, the start of an engine phase the test hook holds for a moment, or a
number of trained steps), and so on; a last incarnation without hooks must finish the job:
``succeeded``, every attempt accounted for, metric steps without gaps or duplicates.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from fault_stack import FaultStack, JobWatch, Worker, helpers, wait_for
from fault_report import ScenarioReport
import fault_run_files as run_files

STALL_HOOK = "WORKER_TEST_STALL_IN_PHASE"  # worker/runner.py: the child sleeps when the phase begins


@dataclass(frozen=True)
class Instant:
    label: str
    after_claim_s: Optional[float] = None  # kill this long after the claim was seen
    phase: Optional[str] = None  # kill when the attempt reports this phase (held by the hook)
    phase_count: int = 1  # ... for the n-th time ("training" comes at the start and after each metric step)
    min_steps: Optional[int] = None  # kill once the attempt trained this many steps
    env: dict = field(default_factory=dict)  # the killed incarnation's extra environment

    @staticmethod
    def in_phase(label: str, phase: str, count: int = 1, hold_s: float = 2.0) -> "Instant":
        """Kill while the engine is in ``phase`` (the ``count``-th time in the attempt), held
        ``hold_s`` by the test hook so the kill lands inside it whatever the machine's speed."""
        return Instant(label, phase=phase, phase_count=count, env={STALL_HOOK: f"{phase}:{hold_s:g}"})


# The instants of the issue: right after the claim, while the child starts (no warm spare: the
# child is spawned for the job and imports torch), while it prepares data, while the kernels
# load, mid-step; and between a metric step and the first checkpoint (its metric record is
# written, the restart begins at step 0 again: the record must not be there twice). The job
# must log metrics more often than it checkpoints for that one.
FIRST_SECONDS = (
    Instant("right after the claim", after_claim_s=0.0),
    Instant("while the child starts", after_claim_s=0.3, env={"WORKER_WARM_CHILD": "false"}),
    Instant.in_phase("while it prepares data", "preparing data"),
    Instant.in_phase("while the kernels load", "loading kernels"),
    Instant.in_phase("after a metric step, before the first checkpoint", "training", count=2),
    Instant("mid-step", min_steps=2),
)


def spread_instants(last_s: float, every_s: float) -> tuple[Instant, ...]:
    """Kills at 0, every_s, 2*every_s, ... last_s seconds after the claim (bench/faults.py)."""
    n = int(round(last_s / every_s))
    return tuple(Instant(f"{i * every_s:.1f} s after the claim", after_claim_s=i * every_s) for i in range(n + 1))


def _attempt_phases(listener: helpers.EventListener, attempt: int) -> list[str]:
    """The phases the stream shows after the claim of ``attempt``, in stream order.

    A claim publishes a ``running`` status event with a new ``started_at`` in the transaction
    that counts the attempt, and the phases of that attempt come after it in the stream. Not by
    the time the test saw the claim: the API poll can see it after the engine began its first
    phases, and a phase seen before would be missed (on a busy machine the kill then never
    comes and the job finishes unseen).
    """
    claims, phases = 0, []
    seen_starts: set = set()
    for kind, data, _ in list(listener.events):
        if kind == "status" and data.get("status") == "running" and data.get("started_at") not in seen_starts:
            seen_starts.add(data.get("started_at"))
            claims += 1
            phases = []
        elif kind == "phase" and claims == attempt:
            phases.append(data.get("phase"))
    return phases if claims == attempt else []


def _stream_summary(listener: helpers.EventListener, slot: Worker, last: int = 30) -> str:
    """The stream's newest events and the worker's last log lines, for a failure's message."""
    shown = []
    for kind, data, _ in list(listener.events)[-last:]:
        what = {"status": data.get("status"), "phase": data.get("phase"), "progress": data.get("step")}.get(kind)
        shown.append(f"{kind}:{what}" if what is not None else kind)
    error = f"; the stream ended with {listener.error!r}" if listener.error is not None else ""
    log = slot.process.output().splitlines()[-15:] if slot.process is not None else []
    return f"newest events {shown}{error}; the worker's log ends:\n" + "\n".join(log)


def _wait_instant(slot: Worker, watch: JobWatch, listener: helpers.EventListener, job_id: int,
                  attempt: int, instant: Instant, timeout: float) -> float:
    """Blocks until the instant of attempt ``attempt``; returns the claim's monotonic time."""
    wait_for(lambda: (s := watch.latest(job_id)) is not None and s.attempts >= attempt and s.status == "running",
             timeout, f"claim of attempt {attempt}", every=0.01)
    claimed = time.monotonic()
    if instant.after_claim_s is not None:
        time.sleep(max(0.0, instant.after_claim_s - (time.monotonic() - claimed)))
    elif instant.phase is not None:
        def seen() -> bool:
            if listener.error is not None:  # a dead stream shows no more phases: say so now
                raise AssertionError(f"the event stream ended while waiting for {instant.phase!r}: "
                                     f"{_stream_summary(listener, slot)}")
            if _attempt_phases(listener, attempt).count(instant.phase) >= instant.phase_count:
                return True
            if (s := watch.latest(job_id)) is not None and s.status != "running":  # the instant passed unseen
                raise AssertionError(f"the job went {s.status} in attempt {attempt} before phase "
                                     f"{instant.phase!r} x{instant.phase_count}: {_stream_summary(listener, slot)}")
            return False

        try:
            wait_for(seen, timeout, f"phase {instant.phase!r} x{instant.phase_count} in attempt {attempt}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}: {_stream_summary(listener, slot)}") from None
    elif instant.min_steps is not None:
        wait_for(lambda: watch.steps_this_attempt(job_id) >= instant.min_steps, timeout,
                 f"{instant.min_steps} steps", every=0.05)
    return claimed


def run_kill_instants(stack: FaultStack, instants: tuple[Instant, ...], iterations: int = 20,
                      freq_metrics: int = 5, freq_checkpoint: int = 10, say: Callable[[str], None] = lambda _: None,
                      name: str = "kill at any instant", timeout: float = 180) -> ScenarioReport:
    slot = stack.worker("instants")
    job_id = stack.create_train_job(iterations=iterations, freq_checkpoint=freq_checkpoint,
                                    freq_metrics=freq_metrics, metric_samples=0)
    watch = JobWatch(stack.api.base_url, [job_id], interval_s=0.02)
    listener = helpers.EventListener(stack.api.base_url, job_id, after=0)
    report = ScenarioReport(name, jobs=1)
    kills = []
    try:
        for attempt, instant in enumerate(instants, start=1):
            slot.start(**instant.env)  # at once after the last kill, as a restart policy would
            claimed = _wait_instant(slot, watch, listener, job_id, attempt, instant, timeout)
            after_s = time.monotonic() - claimed
            kill = slot.sigkill()
            job = helpers.get_job(stack.client, job_id)
            kill.wait_children_gone()
            kill.job_id = job_id
            kills.append(kill)
            phases = _attempt_phases(listener, attempt)
            step = int((job.get("progress") or {}).get("step") or 0)
            report.kills += 1
            say(f"kill {attempt} {instant.label}: {after_s:.2f}s after the claim, phases {phases}, step {step}")
            report.notes.append(f"{instant.label}: killed {after_s:.2f}s after the claim in phase "
                                f"{(phases or ['starting'])[-1]!r} at step {step}")
            if kill.children_gone_at is None:
                report.problems.append(f"{instant.label}: children outlived the worker: {kill.survivors}")
            if job["status"] != "running" or job["attempts"] != attempt:
                report.problems.append(f"{instant.label}: the job was {job['status']} (attempt "
                                       f"{job['attempts']}) at the kill, expected running attempt {attempt}")
        slot.start()
        final = helpers.wait_job(stack.client, job_id, timeout=timeout)
        time.sleep(0.1)  # the watcher's last look
    finally:
        watch.stop()
        listener.join(1)
        slot.stop()
    report.dead_running_s = [watch.still_running_after(k) or 0.0 for k in kills]
    _check_final(stack, job_id, final, len(instants), iterations, freq_metrics, report)
    return report


def _check_final(stack: FaultStack, job_id: int, final: dict, kills: int, iterations: int, freq: int,
                 report: ScenarioReport) -> None:
    if final["status"] == "succeeded":
        report.finished = 1
    else:
        report.errors.append(f"job {job_id} ended {final['status']}: {final['error']}")
    if final["attempts"] != kills + 1:
        report.problems.append(f"job {job_id}: {final['attempts']} attempts for {kills} kills")
    expected = list(range(freq, iterations + 1, freq))
    served = [m["step"] for m in stack.client.get(f"/api/jobs/{job_id}/metrics").json()]
    for where, steps in (("metrics.jsonl", run_files.metric_steps(stack.run_dir(job_id))), ("GET /metrics", served)):
        if steps != expected:
            report.problems.append(f"job {job_id}: {where} steps {steps}, expected {expected}")
    # each start resumed from the newest checkpoint it could have: steps never go back
    starts = [int(s["step"]) for s in run_files.starts(stack.run_dir(job_id))]
    if starts != sorted(starts):
        report.problems.append(f"job {job_id}: run.json starts went back: {starts}")


__all__ = ["FIRST_SECONDS", "Instant", "run_kill_instants", "spread_instants"]
