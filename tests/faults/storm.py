"""The kill storm: N workers, M training jobs, a worker holding a job SIGKILLed at random
(seeded) intervals and restarted at once under its name, K kills in all; then what must hold.

- every job ends ``succeeded``;
- no job ever ran on two workers at once: the claims the database recorded (attempt, worker,
  started_at) form windows that end when their worker was killed and its engine children were
  gone (or when it noted the lost lease and killed its child), before the next claim began;
- each kill redoes at most one checkpoint interval: the next start in run.json resumes from
  the newest checkpoint on disk at the kill;
- metric steps without gaps or duplicates, in metrics.jsonl and in GET /api/jobs/{id}/metrics.

``StormPlan`` sizes it: the test compresses it (kills every few seconds, tiny jobs),
bench/faults.py runs it at the issue's size.
"""
from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from typing import Callable

from fault_stack import Attempt, FaultStack, JobWatch, Kill, helpers
from fault_report import ScenarioReport
import fault_run_files as run_files


@dataclass(frozen=True)
class StormPlan:
    workers: int = 2
    jobs: int = 6
    kills: int = 8
    kill_every_s: tuple[float, float] = (20.0, 30.0)
    iterations: int = 400
    freq_checkpoint: int = 40
    freq_metrics: int = 40
    seed: int = 0
    min_steps_to_kill: int = 0  # a victim's job has trained this many steps in its attempt (0: any running job)
    victim_wait_s: float = 120.0  # the longest wait for a worker that holds a job, per kill
    timeout_s: float = 1200.0  # the whole storm, kills and the jobs' ends


@dataclass
class KillRecord:
    kill: Kill
    checkpoint_step: int = 0  # the newest checkpoint on disk once the run was dead
    step: int = 0  # the highest step the run is known to have reached
    starts_before: int = 0  # run.json starts[] entries written by the killed run and earlier


def _victims(stack: FaultStack, watch: JobWatch, min_steps: int) -> list[tuple[str, int]]:
    """(worker, job) pairs where the worker's current incarnation runs the job, and has
    trained it ``min_steps`` steps."""
    out = []
    for name, job_id in sorted(watch.running_on().items()):
        worker = stack.workers.get(name)
        claims = watch.claims(job_id)
        if (worker is not None and claims and claims[-1].worker == name and claims[-1].started_at >= worker.started_at
                and watch.steps_this_attempt(job_id) >= min_steps):
            out.append((name, job_id))
    return out


def _kill_one(stack: FaultStack, name: str, job_id: int) -> KillRecord:
    kill = stack.workers[name].sigkill()
    job = helpers.get_job(stack.client, job_id)  # the row as the dead worker left it
    kill.wait_children_gone()
    if job["status"] != "running" or job["worker"] != name:
        return KillRecord(kill)  # it had just finished: the kill hit a worker between jobs
    kill.job_id = job_id
    run_dir = stack.run_dir(job_id)  # read once the run is dead: nothing writes there now
    ckpt = run_files.newest_checkpoint_step(run_dir)
    step = max([ckpt, int((job.get("progress") or {}).get("step") or 0), *run_files.metric_steps(run_dir)])
    return KillRecord(kill, ckpt, step, len(run_files.starts(run_dir)))


def run_kill_storm(stack: FaultStack, plan: StormPlan, say: Callable[[str], None] = lambda _: None,
                   name: str = "kill storm") -> ScenarioReport:
    names = [f"storm{i}" for i in range(plan.workers)]
    for n in names:
        stack.worker(n).start()
    stack.wait_live(names)
    model = dict(iterations=plan.iterations, freq_checkpoint=plan.freq_checkpoint,
                 freq_metrics=plan.freq_metrics, metric_samples=0)
    job_ids = [stack.create_train_job(**model) for _ in range(plan.jobs)]
    watch = JobWatch(stack.api.base_url, job_ids)
    rng = random.Random(plan.seed)
    records: list[KillRecord] = []
    started = time.monotonic()
    try:
        while len(records) < plan.kills:
            time.sleep(rng.uniform(*plan.kill_every_s))
            victims = _wait_victims(stack, watch, job_ids, plan)
            if not victims:
                say(f"no worker holds a job any more after {len(records)} kills")
                break
            victim, job_id = rng.choice(victims)
            rec = _kill_one(stack, victim, job_id)
            records.append(rec)
            say(f"kill {len(records)}: {victim} running job {rec.kill.job_id} at step {rec.step} "
                f"(checkpoint {rec.checkpoint_step}), {time.monotonic() - started:.0f}s in")
            stack.workers[victim].start()  # the restart policy: at once, same name
        left = max(30.0, plan.timeout_s - (time.monotonic() - started))
        finals = stack.wait_jobs(job_ids, timeout=left)
        time.sleep(0.3)  # the watcher's last look at the final rows
    finally:
        watch.stop()
        stack.stop_workers()  # even when it failed: no worker of ours may take the next scenario's jobs
    report = ScenarioReport(name, jobs=plan.jobs, kills=len(records))
    check_storm(stack, plan, job_ids, finals, watch, records, report)
    return report


def _wait_victims(stack: FaultStack, watch: JobWatch, job_ids: list[int], plan: StormPlan) -> list[tuple[str, int]]:
    deadline = time.monotonic() + plan.victim_wait_s
    while time.monotonic() < deadline:
        victims = _victims(stack, watch, plan.min_steps_to_kill)
        if victims:
            return victims
        if all((s := watch.latest(j)) is not None and s.status in helpers.TERMINAL for j in job_ids):
            return []
        time.sleep(0.05)
    return []


_CLAIM = re.compile(r"\[worker (\S+)\] claimed \w+ job \d+ \(attempt (\d+)\)")
_LEASE_LOST = "lost the job's lease"


def _lease_lost_attempts(log: str) -> set[int]:
    """Attempts whose worker noted a lost lease (and killed its child) before the next claim."""
    lost, attempt = set(), None
    for line in log.splitlines():
        m = _CLAIM.search(line)
        if m:
            attempt = int(m.group(2))
        elif _LEASE_LOST in line and attempt is not None:
            lost.add(attempt)
    return lost


def _exclusive(job_id: int, claims: list[Attempt], kills: list[Kill], lease_lost: set[int]) -> list[str]:
    """Each claim's run must have ended before the next claim of the job began."""
    problems = []
    for prev, nxt in zip(claims, claims[1:]):
        ended = [k for k in kills if k.worker == prev.worker and prev.started_at <= k.at <= nxt.started_at]
        if prev.number in lease_lost:
            continue  # fenced: the child was killed before the note, and the note precedes the claim
        if not ended:
            problems.append(f"job {job_id}: attempt {nxt.number} claimed by {nxt.worker} while attempt "
                            f"{prev.number} on {prev.worker} had not ended (no kill, no lost lease)")
        elif ended[0].children_gone_at is None or ended[0].children_gone_at > nxt.started_at:
            problems.append(f"job {job_id}: attempt {nxt.number} claimed by {nxt.worker} before the engine "
                            f"child of attempt {prev.number} on {prev.worker} was gone")
    return problems


def check_storm(stack: FaultStack, plan: StormPlan, job_ids: list[int], finals: dict[int, dict],
                watch: JobWatch, records: list[KillRecord], report: ScenarioReport) -> None:
    kills = [r.kill for r in records]
    report.errors += watch.errors
    expected = list(range(plan.freq_metrics, plan.iterations + 1, plan.freq_metrics))
    for job_id in job_ids:
        final = finals[job_id]
        if final["status"] == "succeeded":
            report.finished += 1
        else:
            report.errors.append(f"job {job_id} ended {final['status']}: {final['error']}")
        claims = watch.claims(job_id)
        if [c.number for c in claims] != list(range(1, final["attempts"] + 1)):
            report.problems.append(f"job {job_id}: claims seen {[c.number for c in claims]} of "
                                   f"{final['attempts']} attempts")
        lost = _lease_lost_attempts(helpers.job_log(stack.client, job_id))
        report.problems += _exclusive(job_id, claims, kills, lost)
        if lost:
            report.notes.append(f"job {job_id}: attempts {sorted(lost)} stopped on a lost lease")
        run_dir = stack.run_dir(job_id)
        on_disk = run_files.metric_steps(run_dir)
        served = [m["step"] for m in stack.client.get(f"/api/jobs/{job_id}/metrics").json()]
        for where, steps in (("metrics.jsonl", on_disk), ("GET /metrics", served)):
            if steps != expected:
                report.problems.append(f"job {job_id}: {where} steps {steps}, expected {expected}")
    for rec in records:
        k = rec.kill
        if k.children_gone_at is None:
            report.problems.append(f"kill of {k.worker}: children outlived it by 10 s: {k.survivors}")
        if k.job_id is None:
            continue
        held = watch.still_running_after(k)
        if held is not None:
            report.dead_running_s.append(held)
        starts = run_files.starts(stack.run_dir(k.job_id))
        if len(starts) <= rec.starts_before:
            report.problems.append(f"job {k.job_id}: no start after the kill of {k.worker}")
            continue
        resumed = int(starts[rec.starts_before]["step"])
        report.redone_steps.append(max(0, rec.step - resumed))
        if resumed != rec.checkpoint_step:
            report.problems.append(f"job {k.job_id}: resumed at step {resumed} after the kill of {k.worker}, "
                                   f"not from the newest checkpoint (step {rec.checkpoint_step})")
        if rec.step - resumed > plan.freq_checkpoint:
            report.problems.append(f"job {k.job_id}: {rec.step - resumed} steps redone after a kill "
                                   f"(checkpoint interval {plan.freq_checkpoint})")
    hits = sum(r.kill.job_id is not None for r in records)
    report.notes.append(f"{hits} of {len(records)} kills hit a running job; "
                        f"{sum(f['attempts'] for f in finals.values())} claims for {len(job_ids)} jobs")


__all__ = ["KillRecord", "StormPlan", "check_storm", "run_kill_storm"]
