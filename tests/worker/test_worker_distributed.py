"""A job of several processes through REST and a real worker: torchrun started by the job child
(gloo, CPU processes standing in for GPUs), rank 0 alone reporting, a worker SIGKILL survived like
a one-process job, and a job no live worker can hold refused with the numbers."""
from __future__ import annotations

import re
import time

import psutil

from worker_helpers import CONFIG_2D, EventListener, config, get_job, job_log, wait_job

# fp32 explicitly: the same steps whatever the CPU's bf16 support; batch 4 splits 2 + 2
TWO_PROCESS_CONFIG = config(CONFIG_2D, precision="fp32", metric_samples=2, metric_steps=2)


def create(client, dataset_id: int, cfg: dict, gpus: int):
    return client.post("/api/jobs", json={"kind": "train", "dataset_id": dataset_id, "config": cfg,
                                          "device": "cpu", "gpus": gpus})


def ranks_of(procs: list) -> list:
    out = []
    for p in procs:
        try:
            cmd = p.cmdline()  # a rank: python -u -m worker.rank_main rank DIR (the agent: ... agent N DIR)
            if "worker.rank_main" in cmd and "rank" in cmd:
                out.append(p)
        except psutil.Error:
            pass
    return out


def gone(procs: list, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]:
            return True
        time.sleep(0.05)
    return False


def test_a_two_process_job_runs_and_reports_once(stack, start_worker, dataset_2d):
    client = stack.client
    start_worker("pair", WORKER_NPROC="2")
    assert [w["gpus"] for w in client.get("/api/health").json()["live_workers"]] == [2]
    assert [w["gpus"] for w in client.get("/api/workers").json() if w["name"].endswith("-pair")] == [2]

    r = create(client, dataset_2d, TWO_PROCESS_CONFIG, gpus=3)
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == [{"loc": "gpus", "msg": "gpus 3 but the largest live worker on queue cpu has 2"}]

    r = create(client, dataset_2d, config(TWO_PROCESS_CONFIG, iterations=12, freq_metrics=6, freq_checkpoint=6),
               gpus=2)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["gpus"] == 2
    events = EventListener(stack.base_url, job["id"], after=0)
    final = wait_job(client, job["id"], timeout=240)
    events.join()
    assert final["status"] == "succeeded", final["error"]
    assert final["progress"]["step"] == 12
    log = job_log(client, job["id"])
    # the engine ran as two processes, and the page says so
    live = client.get(f"/api/jobs/{job['id']}/live").json()
    assert live["run_info"]["world_size"] == 2, live
    # only rank 0 reports: one start, one metrics row and one sample set per metric step, and
    # the progress steps only ever go up (a second reporter would repeat them)
    assert log.count("[worker] starting at step 0 of 12") == 1, log[-3000:]
    assert [m["step"] for m in client.get(f"/api/jobs/{job['id']}/metrics").json()] == [6, 12]
    assert len(client.get(f"/api/jobs/{job['id']}/samples").json()) == 2 * 2
    steps = [e["step"] for e in events.of("progress")]
    assert steps and steps == sorted(set(steps)), steps
    assert steps[-1] == 12
    assert client.get(f"/api/jobs/{job['id']}/checkpoint").status_code == 200  # exported by the child


def test_a_two_process_job_survives_a_worker_sigkill(stack, start_worker, dataset_2d):
    client = stack.client
    a = start_worker("a", WORKER_NPROC="2")
    r = create(client, dataset_2d, config(TWO_PROCESS_CONFIG, iterations=60, freq_metrics=10, freq_checkpoint=20,
                                          metric_samples=1), gpus=2)
    assert r.status_code == 201, r.text
    job = r.json()
    wait_job(client, job["id"], timeout=240, what="a checkpoint and a metric step beyond it",
             until=lambda j: (j["checkpoint_step"] or 0) >= 20
             and (j["last_metrics"] or {}).get("step", 0) > j["checkpoint_step"])
    family = a.children()
    assert len(ranks_of(family)) == 2, [p.cmdline() for p in family]
    a.kill()  # SIGKILL: the child, torchrun's agent and both ranks must go with it
    assert gone(family, 5), [p.cmdline() for p in family if p.is_running()]
    ckpts = sorted((stack.data_dir / "runs" / str(job["id"]) / "checkpoints").glob("step-*.pt"))
    last = int(re.search(r"step-(\d+)", ckpts[-1].name).group(1))

    b = start_worker("b", WORKER_NPROC="2")
    final = wait_job(client, job["id"], timeout=240)
    assert final["status"] == "succeeded", final["error"]
    assert final["worker"] == b.name and final["attempts"] == 2
    assert final["progress"]["step"] == 60
    log = job_log(client, job["id"])
    assert re.search(rf"resuming from \S*step-{last:08d}\.pt at step {last} of 60", log), log[-3000:]
    assert [m["step"] for m in client.get(f"/api/jobs/{job['id']}/metrics").json()] == list(range(10, 61, 10))


def test_a_two_process_job_cancels_through_rank_0_and_an_unsplittable_batch_is_refused(stack, start_worker, dataset_2d):
    client = stack.client
    w = start_worker("c", WORKER_NPROC="2")
    r = create(client, dataset_2d, config(TWO_PROCESS_CONFIG, iterations=5000, freq_metrics=1000,
                                          freq_checkpoint=1000), gpus=2)
    job = r.json()
    wait_job(client, job["id"], timeout=240, what="training steps",
             until=lambda j: j["progress"]["step"] >= 5)
    family = w.children()
    assert len(ranks_of(family)) == 2
    assert client.post(f"/api/jobs/{job['id']}/cancel").status_code == 202
    final = wait_job(client, job["id"], timeout=60)
    assert final["status"] == "cancelled", final
    # the stop reached rank 0, which checkpointed where the job stood; then every rank ended
    assert final["checkpoint_step"] is not None and final["checkpoint_step"] >= 5
    assert gone(ranks_of(family), 15)
    assert "stopped at step" in job_log(client, job["id"])

    # a batch of 3 cannot be split over 2 processes: refused at submit with the engine's own rule
    # (ddpm.config.batch_split_problems), before any rank starts
    cfg = config(TWO_PROCESS_CONFIG, iterations=4)
    cfg["dataset"]["batch_size"] = 3
    r = create(client, dataset_2d, cfg, gpus=2)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == "config.dataset.batch_size"
    assert r.json()["detail"][0]["msg"].startswith("3 cannot be split evenly across 2 processes")


def test_a_worker_too_small_for_a_job_hands_it_to_one_that_holds_it(stack, start_worker, dataset_2d):
    client = stack.client
    big = start_worker("big", WORKER_NPROC="2")
    busy = create(client, dataset_2d, config(TWO_PROCESS_CONFIG, iterations=5000, freq_metrics=1000,
                                             freq_checkpoint=1000), gpus=1).json()
    wait_job(client, busy["id"], timeout=120, what="running", until=lambda j: j["status"] == "running")
    r = create(client, dataset_2d, config(TWO_PROCESS_CONFIG, iterations=4, freq_metrics=4, freq_checkpoint=4),
               gpus=2)
    assert r.status_code == 201, r.text  # the big worker holds 2, though it is busy now
    job = r.json()
    small = start_worker("small")  # one process: takes the message and must give it back
    deadline = time.monotonic() + 60
    while "handed back to the queue" not in small.output():
        assert time.monotonic() < deadline, small.output()[-2000:]
        time.sleep(0.05)
    assert get_job(client, job["id"])["status"] == "queued"
    client.post(f"/api/jobs/{busy['id']}/cancel")
    final = wait_job(client, job["id"], timeout=240)
    assert final["status"] == "succeeded", final["error"]
    assert final["worker"] == big.name and final["attempts"] == 1  # never claimed by the small one


def test_a_rank_killed_mid_run_fails_the_job_naming_it(stack, start_worker, dataset_2d):
    client = stack.client
    w = start_worker("k", WORKER_NPROC="2")
    job = create(client, dataset_2d, config(TWO_PROCESS_CONFIG, iterations=5000, freq_metrics=1000,
                                            freq_checkpoint=1000), gpus=2).json()
    wait_job(client, job["id"], timeout=240, what="training steps", until=lambda j: j["progress"]["step"] >= 3)
    family = w.children()
    ranks = {int(p.environ()["RANK"]): p for p in ranks_of(family)}
    ranks[1].kill()  # kill -9 of one rank (the OOM killer does the same)
    final = wait_job(client, job["id"], timeout=90)
    assert final["status"] == "failed"
    pid = ranks[1].pid
    assert final["error"] == (f"rank 1 (pid {pid}) was killed by SIGKILL (one of 2 processes) (most often the "
                              "system's out-of-memory killer: lower dataset.batch_size or dataset.image_size); "
                              "the other processes stopped with it"), final["error"]
    assert gone(ranks_of(family), 15)
