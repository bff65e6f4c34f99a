"""Jobs created through REST run on a real `python -m worker`: 2D and 3D training end to end,
live events, a sample job, and weights where the checkpoint route serves them."""
from __future__ import annotations

import gzip
import io
import json
import math
import socket
import struct

import nibabel as nib
import numpy as np
from celery import Celery
from PIL import Image

from worker_helpers import (CONFIG_2D, CONFIG_3D, OUTPUT_SPACING, EventListener, config, create_train_job,
                            get_job, job_log, wait_job, wait_status)


def _safetensors_metadata(data: bytes) -> dict:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]).get("__metadata__", {})


def test_train_2d_end_to_end_with_live_events(stack, worker, dataset_2d):
    client = stack.client
    w = worker
    job = create_train_job(client, dataset_2d, config(CONFIG_2D, iterations=60, freq_metrics=20, freq_checkpoint=20))
    events = EventListener(stack.base_url, job["id"])
    wait_status(client, job["id"], "running")

    # The threads pool keeps the worker answering control pings while the child trains.
    control = Celery(broker=stack.redis_url)
    node = f"ddpm-{w.name}@{socket.gethostname()}"
    replies = control.control.ping(destination=[node], timeout=3)
    assert any(node in r for r in replies), replies

    final = wait_job(client, job["id"])
    events.join()
    assert final["status"] == "succeeded", final["error"]
    assert final["worker"] == w.name and final["attempts"] == 1
    assert final["progress"]["step"] == 60 and final["progress"]["fraction"] == 1.0
    assert final["checkpoint_step"] == 60

    metrics = client.get(f"/api/jobs/{job['id']}/metrics").json()
    assert [m["step"] for m in metrics] == [20, 40, 60]
    assert all(math.isfinite(m["train_loss"]) and m["lr"] == 1e-3 and "loss" not in m for m in metrics)
    assert final["last_metrics"]["step"] == 60

    # training samples written at each metric step are samples of the job (2 per metric step)
    samples = client.get(f"/api/jobs/{job['id']}/samples").json()
    assert sorted((s["step"], s["index"]) for s in samples) == [(st, i) for st in (20, 40, 60) for i in (0, 1)]
    for s in samples:
        assert s["shape"] == [1, 16, 16] and s["volume_url"] is None
        png = client.get(s["preview_url"])
        assert png.status_code == 200
        assert Image.open(io.BytesIO(png.content)).size[0] >= 16

    ckpt = client.get(f"/api/jobs/{job['id']}/checkpoint")
    assert ckpt.status_code == 200
    meta = _safetensors_metadata(ckpt.content)
    assert meta["format"] == "ddpm-studio-unet" and meta["weights"] == "ema" and meta["step"] == "60"

    # live events: running first, progress while running (before the end), metrics, samples, the end
    statuses = [d["status"] for d in events.of("status")]
    assert "running" in statuses and statuses[-1] == "succeeded", statuses
    assert events.error is None
    progress = events.of("progress")
    steps = [p["step"] for p in progress]
    assert steps == sorted(steps) and steps[-1] == 60
    assert any(0 < s < 60 for s in steps), steps
    end_t = next(t for k, d, t in events.events if k == "status" and d["status"] == "succeeded")
    first_progress_t = next(t for k, d, t in events.events if k == "progress" and d["step"] > 0)
    assert first_progress_t < end_t
    assert [m["step"] for m in events.of("metrics")] == [20, 40, 60]
    assert len(events.of("sample")) == 6
    assert f"claimed train job {job['id']}" in job_log(client, job["id"])


def test_train_3d_then_sample_job_writes_nifti_with_spacing(stack, worker, dataset_3d):
    client = stack.client
    job = create_train_job(client, dataset_3d, config(CONFIG_3D))
    final = wait_job(client, job["id"])
    assert final["status"] == "succeeded", final["error"]
    assert [m["step"] for m in client.get(f"/api/jobs/{job['id']}/metrics").json()] == [10, 20]
    train_samples = client.get(f"/api/jobs/{job['id']}/samples").json()
    assert [(s["step"], s["shape"]) for s in train_samples] == [(10, [1, 16, 16, 16]), (20, [1, 16, 16, 16])]

    r = client.post("/api/jobs", json={"kind": "sample", "source_job_id": job["id"], "num_samples": 2,
                                       "sampler": "ddim", "steps": 5, "seed": 3, "device": "cpu"})
    assert r.status_code == 201, r.text
    sjob = wait_job(client, r.json()["id"])
    assert sjob["status"] == "succeeded", sjob["error"]
    samples = client.get(f"/api/jobs/{sjob['id']}/samples").json()
    assert [s["index"] for s in samples] == [0, 1]
    for s in samples:
        vol = client.get(s["volume_url"])
        assert vol.status_code == 200
        assert vol.content[:2] == b"\x1f\x8b"  # a real .nii.gz
        img = nib.Nifti1Image.from_bytes(gzip.decompress(vol.content))
        data = np.asarray(img.dataobj)
        assert data.shape == (16, 16, 16) and data.dtype == np.float32
        assert 0.0 <= data.min() and data.max() <= 1.0
        np.testing.assert_allclose(np.diag(img.affine)[:3], [OUTPUT_SPACING] * 3)
        np.testing.assert_allclose(img.header.get_zooms()[:3], [OUTPUT_SPACING] * 3)
        assert client.get(s["preview_url"]).status_code == 200
    assert get_job(client, sjob["id"])["progress"]["fraction"] == 1.0
