"""A job's ``gpus`` (processes it runs as) against what the live workers hold: stored and shown,
refused with the numbers when no live worker of its queue can hold it or its batch does not split
across them, at submit and at resume, and the workers' counts in /api/health and /api/workers."""
from __future__ import annotations

import copy

import pytest
from test_api_jobs import CFG_3D, queued_tasks, train
from upload_files import nifti_bytes

from backend import leases
from backend.models import Job
from backend.worker_registry import remove_worker

SPLIT_RULE = "use a multiple of 2 (the batch is global: each process takes batch_size / processes)"


def batch_of(n: int) -> dict:
    cfg = copy.deepcopy(CFG_3D)
    cfg["dataset"]["batch_size"] = n
    return cfg


@pytest.fixture
def ds3d(make_dataset) -> int:
    return make_dataset({"v/a.nii.gz": nifti_bytes(), "v/b.nii.gz": nifti_bytes()})


def beat(app, name: str, queues: list[str], device: str, gpus: int) -> None:
    with app.state.session_factory() as s:
        leases.heartbeat(s, name, queues=queues, device=device, gpus=gpus)


def test_a_job_no_live_worker_can_hold_is_refused_with_the_numbers(client, app, redis_conn, ds3d):
    beat(app, "gpu-pair", ["gpu", "cpu"], "cuda:0-1 (GPUs 0,1)", 2)
    beat(app, "gpu-one", ["gpu", "cpu"], "cuda:0 (GPU 2)", 1)
    r = train(client, ds3d, batch_of(4), device="gpu", gpus=4)
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == [{"loc": "gpus", "msg": "gpus 4 but the largest live worker on queue gpu has 2"}]
    assert queued_tasks(redis_conn, "gpu") == []  # nothing was queued

    r = train(client, ds3d, batch_of(2), device="gpu", gpus=2)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["gpus"] == 2 and job["queue"] == "gpu"
    assert client.get(f"/api/jobs/{job['id']}").json()["gpus"] == 2
    assert [j["gpus"] for j in client.get("/api/jobs").json()] == [2]


def test_the_cpu_queue_counts_processes_and_one_process_jobs_still_wait(client, app, ds3d):
    r = train(client, ds3d, batch_of(2), device="cpu", gpus=2)  # no worker at all
    assert r.status_code == 422
    assert "gpus 2 but no live worker serves queue cpu" in r.json()["detail"][0]["msg"]
    assert "WORKER_NPROC=2" in r.json()["detail"][0]["msg"]
    r = train(client, ds3d, device="cpu")  # one process waits for a worker, as it always has
    assert r.status_code == 201 and r.json()["gpus"] == 1
    beat(app, "cpu-pair", ["cpu"], "cpu", 2)
    assert train(client, ds3d, batch_of(2), device="cpu", gpus=2).status_code == 201
    assert train(client, ds3d, batch_of(3), device="cpu", gpus=3).json()["detail"][0]["msg"] == \
        "gpus 3 but the largest live worker on queue cpu has 2"


def test_a_batch_that_does_not_split_across_the_processes_is_refused_at_submit(client, app, redis_conn, ds3d):
    beat(app, "cpu-pair", ["cpu"], "cpu", 2)
    r = train(client, ds3d, batch_of(3), device="cpu", gpus=2)
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == [{"loc": "config.dataset.batch_size",
                                   "msg": f"3 cannot be split evenly across 2 processes; {SPLIT_RULE}"}]
    assert queued_tasks(redis_conn, "cpu") == [] and client.get("/api/jobs").json() == []
    # a count no worker holds is named alone: the batch advice would be for the wrong count
    assert train(client, ds3d, batch_of(3), device="cpu", gpus=4).json()["detail"] == [
        {"loc": "gpus", "msg": "gpus 4 but the largest live worker on queue cpu has 2"}]
    # one process takes any batch, and an even batch splits
    assert train(client, ds3d, batch_of(3), device="cpu").status_code == 201
    r = train(client, ds3d, batch_of(4), device="cpu", gpus=2)
    assert r.status_code == 201, r.text
    assert r.json()["config"]["dataset"]["batch_size"] == 4  # the global batch, stored as asked


def test_resume_refuses_a_job_no_live_worker_can_hold_and_leaves_it_as_it_was(client, app, redis_conn, ds3d):
    beat(app, "cpu-pair", ["cpu"], "cpu", 2)
    job = train(client, ds3d, batch_of(2), device="cpu", gpus=2).json()
    assert client.post(f"/api/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    redis_conn.delete("cpu")
    with app.state.session_factory() as s:
        remove_worker(s, "cpu-pair")  # the only worker that held 2 went away
    beat(app, "cpu-one", ["cpu"], "cpu", 1)

    r = client.post(f"/api/jobs/{job['id']}/resume")
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == [{"loc": "gpus", "msg": "gpus 2 but the largest live worker on queue cpu has 1"}]
    assert client.get(f"/api/jobs/{job['id']}").json()["status"] == "cancelled"
    assert queued_tasks(redis_conn, "cpu") == []

    # a job stored before the batch rule reached the API is held to it at resume too
    with app.state.session_factory() as s:
        row = s.get(Job, job["id"])
        row.config = {**row.config, "dataset": {**row.config["dataset"], "batch_size": 3}}
        s.commit()
    beat(app, "cpu-pair", ["cpu"], "cpu", 2)
    r = client.post(f"/api/jobs/{job['id']}/resume")
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == [{"loc": "config.dataset.batch_size",
                                   "msg": f"3 cannot be split evenly across 2 processes; {SPLIT_RULE}"}]
    assert client.get(f"/api/jobs/{job['id']}").json()["status"] == "cancelled"

    with app.state.session_factory() as s:
        row = s.get(Job, job["id"])
        row.config = {**row.config, "dataset": {**row.config["dataset"], "batch_size": 2}}
        s.commit()
    r = client.post(f"/api/jobs/{job['id']}/resume")  # the worker that holds 2 is back
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    assert queued_tasks(redis_conn, "cpu") == [{"task": "ddpm.train", "args": [job["id"]], "kwargs": {}}]
    # a job that cannot be resumed keeps its 409, whatever the workers hold
    with app.state.session_factory() as s:
        remove_worker(s, "cpu-pair")
    assert client.post(f"/api/jobs/{job['id']}/resume").status_code == 409


@pytest.mark.parametrize("gpus", [0, -1, 1025, "two"])
def test_a_bad_count_names_the_field(client, ds3d, gpus):
    r = train(client, ds3d, gpus=gpus)
    assert r.status_code == 422
    assert any(item["loc"] == "gpus" for item in r.json()["detail"]), r.text


def test_health_and_workers_list_the_gpu_counts(client, app):
    beat(app, "gpu-pair", ["gpu", "cpu"], "cuda:0-1 (GPUs 0,1)", 2)
    beat(app, "cpu-one", ["cpu"], "cpu", 1)
    health = client.get("/api/health").json()
    assert health["workers"] == 2
    assert health["live_workers"] == [  # no names without a token (GET /api/workers has them)
        {"queues": ["cpu"], "device": "cpu", "gpus": 1},
        {"queues": ["gpu", "cpu"], "device": "cuda:0-1 (GPUs 0,1)", "gpus": 2}]
    assert {w["name"]: w["gpus"] for w in client.get("/api/workers").json()} == {"cpu-one": 1, "gpu-pair": 2}
