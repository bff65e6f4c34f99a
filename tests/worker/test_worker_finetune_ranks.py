"""A fine-tune job of several processes through REST and a real worker: the same rank group as a
train job (torchrun's agent in the job child, gloo CPU processes standing in for GPUs), rank 0
alone reporting, then the evaluation and the label maps written by the job child as for one
process; a count no live worker holds is refused with the numbers."""
from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

from worker_helpers import EventListener, job_log, upload_dataset, wait_job

# 2D from scratch, fp32 (the same steps whatever the CPU's bf16 support); 4 training cases and a
# batch of 2 that splits 1 + 1 over the two processes
UNET = {"dim": 8, "channel_mults": [1, 2], "res_blocks": 1, "attn_res": [], "num_head_channels": 8}
FT_2D = {"gpu": -1, "is_3d": False, "seed": 1, "task": {"num_classes": 2},
         "model": {"unet": UNET, "precision": "fp32", "iterations": 6, "freq_metrics": 3, "freq_checkpoint": 3},
         "dataset": {"image_size": 16, "batch_size": 2, "val_fraction": 0.2}}


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _labelled_2d(client) -> int:
    files = []
    for i in range(5):  # a bright box (class 1) on a dark ground
        label = np.zeros((20, 24), np.uint8)
        label[4 + i % 3:14, 5:17 + i % 4] = 1
        files += [(f"boxes/images/b{i}.png", _png(40 + 150 * label)), (f"boxes/labels/b{i}.png", _png(label))]
    return upload_dataset(client, "boxes-labelled", files)


def create(client, dataset_id: int, gpus: int):
    return client.post("/api/jobs", json={"kind": "finetune", "device": "cpu", "dataset_id": dataset_id,
                                          "config": FT_2D, "gpus": gpus})


def test_a_two_process_finetune_job_runs_reports_once_and_evaluates(stack, start_worker):
    client = stack.client
    start_worker("ft-pair", WORKER_NPROC="2")
    ds = _labelled_2d(client)

    r = create(client, ds, gpus=3)
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == [{"loc": "gpus", "msg": "gpus 3 but the largest live worker on queue cpu has 2"}]

    r = create(client, ds, gpus=2)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["gpus"] == 2
    events = EventListener(stack.base_url, job["id"], after=0)
    final = wait_job(client, job["id"], timeout=300)
    events.join()
    assert final["status"] == "succeeded", final["error"]
    assert final["progress"]["step"] == 6 and final["checkpoint_step"] == 6
    # the fine-tune loop ran as two processes, and the job page says so
    live = client.get(f"/api/jobs/{job['id']}/live").json()
    assert live["run_info"]["world_size"] == 2, live
    # only rank 0 reports: one start, one Dice row per metric step, progress steps only going up
    log = job_log(client, job["id"])
    assert log.count("[worker] starting at step 0 of 6") == 1, log[-3000:]
    metrics = client.get(f"/api/jobs/{job['id']}/metrics").json()
    assert [m["step"] for m in metrics] == [3, 6]
    for m in metrics:  # validation Dice flattened per class, as a one-process job reports it
        assert 0.0 <= m["val_dice"] <= 1.0 and "val_dice_1" in m and math.isfinite(m["train_loss"])
    steps = [e["step"] for e in events.of("progress")]
    assert steps and steps == sorted(set(steps)), steps
    assert steps[-1] == 6
    # then the job child evaluated the held-out case and wrote its label map, as for one process
    evaluation = client.get(f"/api/jobs/{job['id']}/evaluation").json()
    assert len(evaluation["cases"]) == 1 and 0.0 <= evaluation["mean_dice"] <= 1.0
    [prediction] = client.get(f"/api/jobs/{job['id']}/predictions").json()
    mask = client.get(prediction["label_url"])
    assert np.asarray(Image.open(io.BytesIO(mask.content))).shape == (20, 24)
    assert client.get(f"/api/jobs/{job['id']}/checkpoint").status_code == 200
