"""Data, configs and REST helpers for the worker tests (tiny everything: 2 CPU cores)."""
from __future__ import annotations

import copy
import gzip
import io
import json
import threading
import time
from typing import Any, Iterable, Optional

import httpx
import nibabel as nib
import numpy as np
from PIL import Image

from backend.jobs import TERMINAL

# 3D files: 20x20x10 voxels of 1x1x2 mm -> resized keeping the physical aspect to 16^3 voxels
# of 1.25 mm, the spacing the sample affines must carry.
VOLUME_SHAPE, VOLUME_SPACING, OUTPUT_SPACING = (20, 20, 10), (1.0, 1.0, 2.0), 1.25

_UNET = {"dim": 8, "channel_mults": [1, 2], "res_blocks": 1, "attn_res": [], "num_head_channels": 8}

CONFIG_2D: dict[str, Any] = {
    "gpu": -1, "is_3d": False, "seed": 0,
    "model": {"unet": _UNET, "beta_schedule": {"train": {"n_timestep": 100}}, "lr": 1e-3,
              "iterations": 30, "freq_metrics": 15, "freq_checkpoint": 15, "metric_samples": 2,
              "metric_steps": 4, "metric_sampler": "ddim"},
    "dataset": {"name": "image2d", "image_size": 16, "batch_size": 4, "num_workers": 0,
                "pin_memory": False, "val_fraction": 0.25},
}
CONFIG_3D: dict[str, Any] = {
    "gpu": -1, "is_3d": True, "seed": 0,
    "model": {"unet": _UNET, "beta_schedule": {"train": {"n_timestep": 100}}, "lr": 1e-3,
              "iterations": 20, "freq_metrics": 10, "freq_checkpoint": 10, "metric_samples": 1,
              "metric_steps": 3, "metric_sampler": "ddim"},
    "dataset": {"name": "volume3d", "image_size": 16, "batch_size": 2, "num_workers": 0,
                "pin_memory": False, "val_fraction": 0.25},
}


def config(base: dict, **model: Any) -> dict:
    cfg = copy.deepcopy(base)
    cfg["model"].update(model)
    return cfg


def png_bytes(i: int) -> bytes:
    a = np.zeros((16, 16), np.uint8)
    a[3 + i % 3:12 + i % 3, 2 + i % 4:10 + i % 4] = 180 + 10 * (i % 5)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def nifti_bytes(i: int) -> bytes:
    rng = np.random.default_rng(i)
    a = np.zeros(VOLUME_SHAPE, np.float32)
    a[4:16, 5:15, 2:8] = 100 + rng.normal(0, 5, (12, 10, 6))
    img = nib.Nifti1Image(a, np.diag([*VOLUME_SPACING, 1.0]))
    return gzip.compress(img.to_bytes(), compresslevel=1)


def upload_dataset(client: httpx.Client, name: str, files: Iterable[tuple[str, bytes]]) -> int:
    r = client.post("/api/datasets", json={"name": name})
    assert r.status_code == 201, r.text
    ds = r.json()["id"]
    for path, data in files:
        r = client.put(f"/api/datasets/{ds}/files/{path}", content=data,
                       headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 201, r.text
    r = client.post(f"/api/datasets/{ds}/commit")
    assert r.status_code == 200, r.text
    return ds


def create_train_job(client: httpx.Client, dataset_id: int, cfg: dict) -> dict:
    r = client.post("/api/jobs", json={"kind": "train", "dataset_id": dataset_id, "config": cfg, "device": "cpu"})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "queued"
    return r.json()


def get_job(client: httpx.Client, job_id: int) -> dict:
    r = client.get(f"/api/jobs/{job_id}")
    assert r.status_code == 200, r.text
    return r.json()


def wait_job(client: httpx.Client, job_id: int, until=lambda j: j["status"] in TERMINAL,
             timeout: float = 90, what: str = "a final status") -> dict:
    deadline = time.monotonic() + timeout
    job = get_job(client, job_id)
    while not until(job):
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} did not reach {what} within {timeout}s: {job}")
        time.sleep(0.1)
        job = get_job(client, job_id)
    return job


def wait_status(client: httpx.Client, job_id: int, status: str, timeout: float = 90) -> dict:
    job = wait_job(client, job_id, timeout=timeout, what=status,
                   until=lambda j: j["status"] == status or j["status"] in TERMINAL)
    assert job["status"] == status, f"job {job_id} ended {job['status']} ({job['error']}), expected {status}"
    return job


def job_log(client: httpx.Client, job_id: int) -> str:
    r = client.get(f"/api/jobs/{job_id}/log")
    assert r.status_code == 200, r.text
    return r.text


class EventListener:
    """Reads GET /api/jobs/{id}/events in a thread; ``events`` holds (type, data, t_received)."""

    def __init__(self, base_url: str, job_id: int, after: Optional[int] = None) -> None:
        """``after=0`` replays the job's events from its first."""
        self.events: list[tuple[str, dict, float]] = []
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()
        query = "" if after is None else f"?after={after}"
        self._thread = threading.Thread(target=self._run, args=(base_url, f"/api/jobs/{job_id}/events{query}"),
                                        daemon=True)
        self._thread.start()

    def _run(self, base_url: str, path: str) -> None:
        try:
            with httpx.Client(base_url=base_url, timeout=httpx.Timeout(5, read=60)) as c:
                with c.stream("GET", path) as r:
                    kind, data = None, []
                    for line in r.iter_lines():
                        if self._stop.is_set():
                            return
                        if line.startswith("event:"):
                            kind = line.split(":", 1)[1].strip()
                        elif line.startswith("data:"):
                            data.append(line.split(":", 1)[1].strip())
                        elif line == "" and kind is not None:
                            self.events.append((kind, json.loads("\n".join(data)), time.monotonic()))
                            kind, data = None, []
                            if self.events[-1][0] == "status" and self.events[-1][1].get("status") in TERMINAL:
                                return
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def of(self, kind: str) -> list[dict]:
        return [d for k, d, _ in self.events if k == kind]

    def join(self, timeout: float = 30) -> None:
        self._thread.join(timeout)
        self._stop.set()
