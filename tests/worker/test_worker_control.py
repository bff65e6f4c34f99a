"""Cancel and resume, failures with a one-line reason and a full log, and a worker that is
stopped (SIGTERM) giving its job back to the queue."""
from __future__ import annotations

import re
import time

from worker_helpers import (CONFIG_2D, config, create_train_job, get_job, job_log, png_bytes,
                            upload_dataset, wait_job, wait_status)

# long enough that a cancel or stop sent at step 10 lands mid-run: with fused Adam and tcmalloc
# the tiny model trains at well over 100 steps/s on the 2-core machine
LONG_2D = config(CONFIG_2D, iterations=600, freq_metrics=300, freq_checkpoint=1000, metric_samples=0)


def test_cancel_stops_with_a_checkpoint_and_resume_continues_from_it(stack, worker, dataset_2d):
    client = stack.client
    job = create_train_job(client, dataset_2d, LONG_2D)
    wait_job(client, job["id"], until=lambda j: j["progress"]["step"] >= 10, what="step 10")

    t0 = time.monotonic()
    r = client.post(f"/api/jobs/{job['id']}/cancel")
    assert r.status_code == 202 and r.json()["cancel_requested"] is True
    cancelled = wait_status(client, job["id"], "cancelled", timeout=20)
    assert time.monotonic() - t0 < 8  # cooperative: checkpoint + stop, inside the 10 s grace period
    stopped_at = cancelled["checkpoint_step"]
    assert stopped_at is not None and 10 <= stopped_at < 600
    assert cancelled["progress"]["step"] == stopped_at and cancelled["error"] is None
    assert client.get(f"/api/jobs/{job['id']}/checkpoint").status_code == 200  # weights of a cancelled run
    log = job_log(client, job["id"])
    assert "cancel requested" in log and f"stopped at step {stopped_at} on request" in log
    assert "killing it" not in log

    r = client.post(f"/api/jobs/{job['id']}/resume")
    assert r.status_code == 202 and r.json()["status"] == "queued"
    final = wait_job(client, job["id"])
    assert final["status"] == "succeeded", final["error"]
    assert final["progress"]["step"] == 600 and final["attempts"] == 2
    log = job_log(client, job["id"])
    assert f"resuming from step {stopped_at} " in log or f"step-{stopped_at:08d}.pt" in log, log[-2000:]
    # the metric rows are those of one run: no step twice
    steps = [m["step"] for m in client.get(f"/api/jobs/{job['id']}/metrics").json()]
    assert steps == [300, 600]


def test_a_failing_job_fails_with_one_line_and_the_worker_goes_on(stack, worker, dataset_2d):
    client = stack.client
    broken = upload_dataset(client, "to-break", [(f"img{i}.png", png_bytes(i)) for i in range(4)])
    # the file became unreadable after upload (disk trouble, someone edited DATA_DIR)
    (stack.data_dir / "datasets" / str(broken) / "files" / "img1.png").write_bytes(b"not a png any more")
    w = worker
    bad = create_train_job(client, broken, config(CONFIG_2D, iterations=10))
    good = create_train_job(client, dataset_2d, config(CONFIG_2D, iterations=10, freq_metrics=10))

    failed = wait_job(client, bad["id"])
    assert failed["status"] == "failed"
    err = failed["error"]
    assert "\n" not in err and len(err) <= 300
    assert "img1.png" in err and "cannot read" in err, err
    assert str(stack.data_dir) not in err  # no server paths in what the user sees
    log = job_log(client, bad["id"])
    assert "Traceback (most recent call last)" in log and "UnidentifiedImageError" in log

    ok = wait_job(client, good["id"])
    assert ok["status"] == "succeeded", ok["error"]
    assert ok["worker"] == failed["worker"] == w.name


def test_stopping_a_worker_gives_its_job_back_and_another_resumes_it(stack, start_worker, dataset_2d):
    client = stack.client
    a = start_worker("a")
    job = create_train_job(client, dataset_2d, LONG_2D)
    wait_job(client, job["id"], until=lambda j: j["progress"]["step"] >= 10, what="step 10")

    t0 = time.monotonic()
    a.stop()  # SIGTERM: checkpoint, give the job back, leave
    assert a.proc.returncode == 0 and time.monotonic() - t0 < 10  # inside `make stop`'s 10 s
    back = get_job(client, job["id"])
    assert back["status"] == "queued" and back["worker"] is None
    assert back["checkpoint_step"] == back["progress"]["step"] >= 10
    assert a.name not in {w["name"] for w in client.get("/api/workers").json()}

    b = start_worker("b")
    final = wait_job(client, job["id"])
    assert final["status"] == "succeeded", final["error"]
    assert final["worker"] == b.name and final["attempts"] == 2
    assert f"step-{back['checkpoint_step']:08d}.pt" in job_log(client, job["id"])


def test_a_run_that_does_not_stop_within_the_grace_period_is_killed(stack, start_worker, dataset_2d):
    client = stack.client
    # Cancel while the child is still setting up (held in "building model" by the test hook): it
    # reads the stop flag only between steps, so a 0.5 s grace period runs out first.
    w = start_worker("a", WORKER_CANCEL_GRACE_S="0.5", WORKER_TEST_STALL_IN_PHASE="building model:8")
    job = create_train_job(client, dataset_2d, LONG_2D)
    wait_status(client, job["id"], "running")
    assert client.post(f"/api/jobs/{job['id']}/cancel").status_code == 202
    final = wait_status(client, job["id"], "cancelled", timeout=20)
    assert final["error"] is None
    log = job_log(client, job["id"])
    assert "did not stop within 0.5s: killing it" in log
    child = int(re.search(r"started train in child pid (\d+)", log).group(1))
    assert child not in {p.pid for p in w.children()}  # reaped: no orphan left training
    # the worker is fine and takes the next job
    nxt = create_train_job(client, dataset_2d, config(CONFIG_2D, iterations=10, freq_metrics=10))
    assert wait_job(client, nxt["id"])["status"] == "succeeded"
