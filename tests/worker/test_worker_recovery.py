"""Crash recovery and exclusivity: a SIGKILLed worker's job is finished by a new worker from
its last checkpoint, and with two workers (plus duplicate messages) every job runs once."""
from __future__ import annotations

import re
import time

import psutil
from celery import Celery

from worker_helpers import CONFIG_2D, config, create_train_job, get_job, job_log, wait_job


def _gone(procs: list, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return True
        time.sleep(0.05)
    return False


def test_sigkill_mid_training_then_a_new_worker_finishes_from_the_checkpoint(stack, start_worker, dataset_2d):
    client = stack.client
    a = start_worker("a")
    job = create_train_job(client, dataset_2d, config(CONFIG_2D, iterations=100, freq_metrics=10,
                                                      freq_checkpoint=40, metric_samples=1, metric_steps=2))
    # killed after a checkpoint and after metric rows past it (they will be computed again)
    wait_job(client, job["id"], what="a checkpoint and a metric step beyond it",
             until=lambda j: (j["checkpoint_step"] or 0) >= 40
             and (j["last_metrics"] or {}).get("step", 0) > j["checkpoint_step"])
    children = a.children()
    assert children, "the job runs in a child process"
    a.kill()  # SIGKILL: no shutdown hooks, no goodbye
    assert _gone(children, 3), "the training child must die with its worker"
    ckpts = sorted((stack.data_dir / "runs" / str(job["id"]) / "checkpoints").glob("step-*.pt"))
    last = int(re.search(r"step-(\d+)", ckpts[-1].name).group(1))
    assert get_job(client, job["id"])["status"] == "running"  # until someone notices the silence

    b = start_worker("b")
    final = wait_job(client, job["id"])
    assert final["status"] == "succeeded", final["error"]
    assert final["worker"] == b.name and final["attempts"] == 2
    assert final["progress"]["step"] == 100
    log = job_log(client, job["id"])
    # resumed from the newest checkpoint on disk when the worker died: no steps lost before it
    assert re.search(rf"resuming from \S*step-{last:08d}\.pt at step {last} of 100", log), log[-2000:]
    # one metric row and one sample per metric step: the rows past the checkpoint were replaced
    metric_steps = [m["step"] for m in client.get(f"/api/jobs/{job['id']}/metrics").json()]
    assert metric_steps == list(range(10, 101, 10))
    sample_steps = [s["step"] for s in client.get(f"/api/jobs/{job['id']}/samples").json()]
    assert sample_steps == list(range(10, 101, 10))


def test_two_workers_four_jobs_each_runs_exactly_once(stack, start_worker, dataset_2d):
    client = stack.client
    a = start_worker("a", wait=False)
    b = start_worker("b", wait=False)
    a.wait_live(client)
    b.wait_live(client)
    cfg = config(CONFIG_2D, iterations=20, freq_metrics=20, freq_checkpoint=20, metric_samples=0)
    jobs = [create_train_job(client, dataset_2d, cfg)["id"] for _ in range(4)]
    # duplicate messages (a broker redelivery, a double re-queue) must not run a job twice
    sender = Celery(broker=stack.redis_url)
    for job_id in jobs:
        sender.send_task("ddpm.train", args=[job_id], queue="cpu")

    finals = [wait_job(client, j, timeout=120) for j in jobs]
    assert [f["status"] for f in finals] == ["succeeded"] * 4, [f["error"] for f in finals]
    assert all(f["attempts"] == 1 for f in finals)
    assert {f["worker"] for f in finals} == {a.name, b.name}
    for j in jobs:
        log = job_log(client, j)
        assert log.count("claimed train job") == 1 and log.count("started train in child") == 1
    # every duplicate was acknowledged and dropped (polled: the logs may trail the job rows)
    deadline = time.monotonic() + 10
    while (ignored := a.output().count("not claimable") + b.output().count("not claimable")) < 4 \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ignored >= 4


def test_a_worker_that_loses_its_lease_stops_its_run_at_once(stack, start_worker, dataset_2d):
    """Fencing: when the database says the job is no longer this worker's (another worker's
    reaper re-queued it), the run is killed before anyone else can start it."""
    from backend.celery_client import recover_stale_jobs
    from backend.db import open_database
    from backend.settings import Settings

    client = stack.client
    # The tiny model trains 100 steps in about a second with a warm child, so a run could end
    # before the reaper acts: the held-out pass at its last step is held for 6 s (the test hook)
    # to keep the first run alive when its lease is taken away, whatever the machine's speed. The
    # second run is held there too, once: more steps would only hold it more often.
    a = start_worker("a", WORKER_TEST_STALL_IN_PHASE="evaluating:6")
    job = create_train_job(client, dataset_2d, config(CONFIG_2D, iterations=100, freq_metrics=100,
                                                      freq_checkpoint=20, metric_samples=0))
    wait_job(client, job["id"], until=lambda j: (j["checkpoint_step"] or 0) >= 20, what="a checkpoint")
    # a reaper with a zero timeout: every running job looks abandoned, is re-queued and re-sent
    settings = Settings(data_dir=stack.data_dir, redis_url=stack.redis_url, worker_heartbeat_timeout_s=1e-6)
    with open_database(settings, run_migrations=False)() as session:
        assert recover_stale_jobs(session, settings) == [job["id"]]
    final = wait_job(client, job["id"])
    assert final["status"] == "succeeded", final["error"]
    assert final["attempts"] == 2 and final["worker"] == a.name
    log = job_log(client, job["id"])
    assert "lost the job's lease" in log
    first, second = (int(p) for p in re.findall(r"started train in child pid (\d+)", log))
    # the first run was gone before the second was claimed
    lost_at = log.index("lost the job's lease")
    assert lost_at < log.index("claimed train job", log.index(f"child pid {first}"))
    assert first != second


def test_a_queued_job_whose_message_was_lost_is_run_by_an_idle_worker(stack, start_worker, dataset_2d):
    """The kill storm's lost nudge: a reaper killed between re-queueing a job and publishing its
    task (or a worker killed between taking a message and claiming its job) leaves the job queued
    with no message. The API sends its task again once an idle worker has left it alone for the
    grace period (the heartbeat timeout, 3 s here)."""
    import redis

    client = stack.client
    job = create_train_job(client, dataset_2d, config(CONFIG_2D, iterations=10, freq_metrics=10,
                                                      freq_checkpoint=10, metric_samples=0))
    conn = redis.Redis.from_url(stack.redis_url)
    assert conn.delete("cpu") == 1  # no worker yet: its message was waiting there, and is gone
    a = start_worker("a")
    final = wait_job(client, job["id"], timeout=60)
    assert final["status"] == "succeeded", final["error"]
    assert final["attempts"] == 1 and final["worker"] == a.name
    assert f"sent the tasks of queued jobs [{job['id']}] again" in stack.api.log.read_text()
