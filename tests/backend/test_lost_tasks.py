"""A queued job whose task message is gone gets its task again, once per grace period, only
while an idle live worker that could run it leaves it alone (real SQLite and Redis; the worker
rows come from heartbeats, as a worker writes them)."""
from __future__ import annotations

import copy

from test_api_jobs import CFG_3D, queued_tasks, train
from upload_files import nifti_bytes

from backend import leases
from backend.lost_tasks import LostTaskWatch

GRACE_S = 10.0
TIMEOUT_S = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def beat(app, name: str, queues: list[str], gpus: int = 1, current_job_id=None) -> None:
    with app.state.session_factory() as s:
        leases.heartbeat(s, name, queues=queues, device="cpu", gpus=gpus, current_job_id=current_job_id)


def resend(app, watch: LostTaskWatch, settings) -> list[int]:
    with app.state.session_factory() as s:
        return watch.resend(s, TIMEOUT_S, settings.redis_url)


def test_an_idle_able_worker_beside_a_queued_job_without_a_message_gets_its_task_again(
        client, app, settings, redis_conn, make_dataset):
    ds = make_dataset({"v/a.nii.gz": nifti_bytes(), "v/b.nii.gz": nifti_bytes()})
    other = train(client, ds, device="cpu").json()
    job = train(client, ds, device="cpu").json()
    redis_conn.delete("cpu")  # the messages are lost (a reaper killed before it published, say)
    clock = Clock()
    watch = LostTaskWatch(GRACE_S, clock=clock)

    # no worker at all: nobody left it alone, nothing to say about its message
    assert resend(app, watch, settings) == []
    clock.now += 2 * GRACE_S
    assert resend(app, watch, settings) == []

    # a worker that serves another queue, and a busy one, do not count
    beat(app, "gpu-only", ["gpu"])
    beat(app, "busy", ["cpu"])
    with app.state.session_factory() as s:
        assert leases.claim_job(s, other["id"], "busy")
    beat(app, "busy", ["cpu"], current_job_id=other["id"])
    clock.now += 2 * GRACE_S
    assert resend(app, watch, settings) == []

    # an idle worker of its queue: sent again once the grace period is over, not before
    beat(app, "idle", ["cpu"])
    assert resend(app, watch, settings) == []
    clock.now += GRACE_S - 1
    assert resend(app, watch, settings) == []
    clock.now += 1
    assert resend(app, watch, settings) == [job["id"]]
    assert queued_tasks(redis_conn, "cpu") == [{"task": "ddpm.train", "args": [job["id"]], "kwargs": {}}]
    # and then once per grace period, not every round
    clock.now += GRACE_S / 2
    assert resend(app, watch, settings) == []
    clock.now += GRACE_S / 2
    assert resend(app, watch, settings) == [job["id"]]

    # a claim ends it: the job is no longer queued
    with app.state.session_factory() as s:
        assert leases.claim_job(s, job["id"], "idle")
    clock.now += 2 * GRACE_S
    assert resend(app, watch, settings) == []


def test_a_job_bigger_than_every_idle_worker_is_left_to_the_worker_that_can_hold_it(
        client, app, settings, redis_conn, make_dataset):
    ds = make_dataset({"v/a.nii.gz": nifti_bytes(), "v/b.nii.gz": nifti_bytes()})
    beat(app, "pair", ["cpu"], gpus=2, current_job_id=None)
    cfg = copy.deepcopy(CFG_3D)
    cfg["dataset"]["batch_size"] = 2
    job = train(client, ds, cfg, device="cpu", gpus=2).json()
    assert job["gpus"] == 2, job
    beat(app, "pair", ["cpu"], gpus=2, current_job_id=job["id"])  # the one that holds it is busy
    beat(app, "single", ["cpu"], gpus=1)  # idle, but too small: it would hand the job back
    redis_conn.delete("cpu")
    clock = Clock()
    watch = LostTaskWatch(GRACE_S, clock=clock)
    assert resend(app, watch, settings) == []
    clock.now += 2 * GRACE_S
    assert resend(app, watch, settings) == []
    beat(app, "pair", ["cpu"], gpus=2, current_job_id=None)  # now it is idle
    assert resend(app, watch, settings) == []
    clock.now += GRACE_S
    assert resend(app, watch, settings) == [job["id"]]
