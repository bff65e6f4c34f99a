"""What a job page sees while a job starts and runs, on a real worker: phases from the claim on,
the training loss with every progress event, the run's device and precision; and a child that
goes silent is killed with a reason naming the phase it stalled in."""
from __future__ import annotations

import math
import re

import psutil

from worker_helpers import CONFIG_2D, EventListener, config, create_train_job, job_log, wait_job


def _replayed(stack, job_id: int) -> list[tuple[str, dict]]:
    """Every event of the job from its first (the listener may connect after the claim)."""
    events = EventListener(stack.base_url, job_id, after=0)
    events.join(60)
    assert events.error is None, events.error
    return [(k, d) for k, d, _ in events.events]


def test_phases_live_loss_and_run_facts_reach_the_job_page(stack, worker, dataset_2d):
    client = stack.client
    job = create_train_job(client, dataset_2d, config(CONFIG_2D, iterations=40, freq_metrics=20, freq_checkpoint=20))
    final = wait_job(client, job["id"])
    assert final["status"] == "succeeded", final["error"]
    events = _replayed(stack, job["id"])

    phases = [d["phase"] for k, d in events if k == "phase"]
    # from the claim to the end, in the order they happen (counts repeat a phase's name)
    order = ["starting", "preparing data", "checking files", "building model", "loading kernels",
             "training", "evaluating", "writing"]
    firsts = [phases.index(p) for p in order]
    assert firsts == sorted(firsts), phases
    counted = [d for k, d in events if k == "phase" and d["phase"] == "checking files"]
    assert counted[-1]["done"] == counted[-1]["total"] == 8, counted  # the 8 files of both splits

    # every training progress report carries the loss since the previous one
    progress = [d for k, d in events if k == "progress" and d["step"] > 0]
    assert len(progress) >= 2 and all(math.isfinite(p["loss"]) for p in progress), progress

    live = client.get(f"/api/jobs/{job['id']}/live").json()
    assert [p[0] for p in live["loss"]] == [p["step"] for p in progress]
    assert live["phase"]["phase"] == "writing"
    info = live["run_info"]
    assert info["device"] == "cpu" and info["precision"] in ("fp32", "bf16") and info["precision_reason"]
    assert f"precision {info['precision']}" in job_log(client, job["id"])


def test_a_silent_child_is_killed_and_the_job_fails_naming_the_phase(stack, start_worker, dataset_2d):
    client = stack.client
    w = start_worker("stall", WORKER_STALL_TIMEOUT_S="2", WORKER_TEST_STALL_IN_PHASE="building model:120")
    job = create_train_job(client, dataset_2d, config(CONFIG_2D, iterations=20))
    final = wait_job(client, job["id"], timeout=60)
    assert final["status"] == "failed"
    assert final["error"].startswith("stalled in phase 'building model': no progress, phase or log output for"), \
        final["error"]
    assert "\n" not in final["error"]
    log = job_log(client, job["id"])
    pid = int(re.search(r"started train in child pid (\d+)", log).group(1))
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert "stalled in phase 'building model'" in log
    assert w.proc.poll() is None  # the worker goes on
