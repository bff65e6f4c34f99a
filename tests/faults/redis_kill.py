"""Redis SIGKILLed while a job trains and started again (empty: no persistence) a few seconds
later. While it is down, GET /api/health says ``degraded`` (broker ``error``) and a new job is
refused with 503 and a JSON detail naming the broker; the running job trains on and finishes;
a job submitted after the restart runs. Our own Redis (``FaultStack.redis``) on a fixed port.
"""
from __future__ import annotations

import time
from typing import Callable

from fault_stack import FaultStack, JobWatch, helpers, wait_for
from fault_report import ScenarioReport
import fault_run_files as run_files


def _health(stack: FaultStack) -> dict:
    r = stack.client.get("/api/health")
    return {"code": r.status_code, **r.json()}


def run_redis_kill(stack: FaultStack, down_s: float = 3.0, iterations: int = 40, freq: int = 10,
                   say: Callable[[str], None] = lambda _: None, name: str = "Redis SIGKILL mid-training",
                   timeout: float = 180) -> ScenarioReport:
    report = ScenarioReport(name, jobs=2, kills=1)
    slot = stack.worker("redis")
    slot.start()
    stack.wait_live([slot.name])
    model = dict(iterations=iterations, freq_checkpoint=freq, freq_metrics=freq, metric_samples=0)
    first = stack.create_train_job(**model)
    watch = JobWatch(stack.api.base_url, [first])
    try:
        wait_for(lambda: watch.steps_this_attempt(first) >= 2, timeout, "the first job training", every=0.05)
        stack.redis.kill()
        down_at = time.monotonic()
        say(f"Redis killed at step {watch.latest(first).step}")
        health = _health(stack)
        if (health["code"], health.get("status"), health.get("broker")) != (200, "degraded", "error"):
            report.problems.append(f"health while Redis is down: {health}")
        r = stack.client.post("/api/jobs", json={"kind": "train", "dataset_id": stack.dataset_id, "device": "cpu",
                                                 "config": helpers.config(helpers.CONFIG_2D, **model)})
        detail = r.json().get("detail") if r.headers.get("content-type", "").startswith("application/json") else None
        if r.status_code != 503 or not isinstance(detail, str) or "redis" not in detail.lower():
            report.problems.append(f"POST /api/jobs while Redis is down: {r.status_code} {r.text[:300]}")
        report.notes.append(f"while down: health {health.get('status')}, POST /api/jobs {r.status_code}: {detail}")
        time.sleep(max(0.0, down_s - (time.monotonic() - down_at)))
        stack.redis.start()
        say(f"Redis back after {time.monotonic() - down_at:.1f}s")
        wait_for(lambda: _health(stack).get("status") == "ok", 30, "health ok after the restart", every=0.2)
        second = stack.create_train_job(**model)
        finals = stack.wait_jobs([first, second], timeout=timeout)
    finally:
        watch.stop()
        if not stack.redis.alive:
            stack.redis.start()  # the next scenario needs it
        slot.stop()
    report.errors += watch.errors
    expected = list(range(freq, iterations + 1, freq))
    for job_id, final in finals.items():
        if final["status"] == "succeeded":
            report.finished += 1
        else:
            report.errors.append(f"job {job_id} ended {final['status']}: {final['error']}")
        steps = run_files.metric_steps(stack.run_dir(job_id))
        if steps != expected:
            report.problems.append(f"job {job_id}: metrics.jsonl steps {steps}, expected {expected}")
    if finals[first]["attempts"] != 1:
        report.problems.append(f"the first job needed {finals[first]['attempts']} attempts: "
                               "the outage did not ride through")
    return report


__all__ = ["run_redis_kill"]
