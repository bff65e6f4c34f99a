"""Fine-tune and study jobs created through REST run on a real `python -m worker`: a tiny 3D
train job is fine-tuned on a labelled set (live Dice metrics, cancel and resume, evaluation on
the held-out split, predicted label maps on each image's own grid), and a study compares
pretrained with scratch on a second labelled set."""
from __future__ import annotations

import gzip
import io
import json
import math
import re
import struct
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from worker_helpers import CONFIG_3D, config, create_train_job, get_job, job_log, upload_dataset, wait_job, wait_status

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))  # the engine tests' tiny labelled phantoms

from finetune_helpers import AFFINE, SHAPE, phantom  # noqa: E402


def _safetensors_metadata(data: bytes) -> dict:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]).get("__metadata__", {})


def _nii(array: np.ndarray) -> bytes:
    return gzip.compress(nib.Nifti1Image(array, AFFINE).to_bytes(), compresslevel=1)


def _labelled(client, name: str, cases: range) -> int:
    files = []
    for i in cases:
        image, label = phantom(i)
        files += [(f"{name}/images/case{i:02d}.nii.gz", _nii(image)), (f"{name}/labels/case{i:02d}.nii.gz", _nii(label))]
    return upload_dataset(client, name, files)


@pytest.fixture(scope="module")
def pretrained(stack) -> dict:
    """A finished 4-step 3D train job on the phantoms' images, and its worker's name."""
    ds = upload_dataset(stack.client, "phantom-images", [(f"vols/p{i}.nii.gz", _nii(phantom(i)[0])) for i in range(4)])
    cfg = config(CONFIG_3D, iterations=4, freq_metrics=4, freq_checkpoint=4)
    return create_train_job(stack.client, ds, cfg)


def _finetune(client, **body) -> dict:
    r = client.post("/api/jobs", json={"kind": "finetune", "device": "cpu", **body})
    assert r.status_code == 201, r.text
    return r.json()


FT = {"gpu": -1, "seed": 1, "task": {"num_classes": 3},
      "model": {"lr": 2e-3, "iterations": 6, "freq_metrics": 3, "freq_checkpoint": 3},
      "dataset": {"batch_size": 2, "val_fraction": 0.2}}


def test_finetune_end_to_end_with_cancel_resume_evaluation_and_predictions(stack, worker, pretrained):
    client = stack.client
    assert wait_job(client, pretrained["id"], timeout=180)["status"] == "succeeded"
    labelled = _labelled(client, "phantoms", range(5))
    long = {**FT, "model": {**FT["model"], "iterations": 400, "freq_metrics": 200, "freq_checkpoint": 5}}
    job = _finetune(client, source_job_id=pretrained["id"], dataset_id=labelled, config=long)
    wait_job(client, job["id"], until=lambda j: (j["checkpoint_step"] or 0) >= 5 or j["status"] != "running"
             and j["status"] != "queued", timeout=180, what="a checkpoint")
    assert client.post(f"/api/jobs/{job['id']}/cancel").status_code == 202
    stopped = wait_job(client, job["id"], timeout=60)
    assert stopped["status"] == "cancelled", stopped["error"]
    assert client.post(f"/api/jobs/{job['id']}/resume").status_code == 202
    wait_job(client, job["id"], until=lambda j: j["progress"]["step"] > stopped["checkpoint_step"] or
             j["status"] in ("failed", "succeeded"), timeout=120, what="progress after the resume")
    assert f"resuming from" in job_log(client, job["id"])
    client.post(f"/api/jobs/{job['id']}/cancel")
    wait_job(client, job["id"], timeout=60)
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 204

    job = _finetune(client, source_job_id=pretrained["id"], dataset_id=labelled, config=FT)
    final = wait_job(client, job["id"], timeout=240)
    assert final["status"] == "succeeded", final["error"]
    assert final["progress"]["step"] == 6 and final["checkpoint_step"] == 6
    metrics = client.get(f"/api/jobs/{job['id']}/metrics").json()
    assert [m["step"] for m in metrics] == [3, 6]
    for m in metrics:  # validation Dice per class, flattened to numbers
        assert 0.0 <= m["val_dice"] <= 1.0 and {"val_dice_1", "val_dice_2"} <= set(m)
        assert math.isfinite(m["train_loss"])

    evaluation = client.get(f"/api/jobs/{job['id']}/evaluation").json()
    assert set(evaluation["per_class"]) == {"1", "2"} and 0.0 <= evaluation["mean_dice"] <= 1.0
    assert len(evaluation["cases"]) == 1  # the held-out fifth of 5 cases, never trained on
    held_out = Path(evaluation["cases"][0]["file"]).name
    predictions = client.get(f"/api/jobs/{job['id']}/predictions").json()
    assert [p["case"] for p in predictions] == [held_out.removesuffix(".nii.gz")]
    label = client.get(predictions[0]["label_url"])
    assert label.status_code == 200
    assert f'job{job["id"]}-{predictions[0]["case"]}-prediction.nii.gz' in label.headers["content-disposition"]
    img = nib.Nifti1Image.from_bytes(gzip.decompress(label.content))
    assert img.shape == SHAPE and np.allclose(img.affine, AFFINE) and img.get_data_dtype() == np.uint8
    assert set(np.unique(np.asarray(img.dataobj))) <= {0, 1, 2}
    image = client.get(predictions[0]["image_url"])
    assert image.status_code == 200 and nib.Nifti1Image.from_bytes(gzip.decompress(image.content)).shape == SHAPE
    assert client.get(f"/api/jobs/{job['id']}/predictions/nope").status_code == 404
    weights = client.get(f"/api/jobs/{job['id']}/checkpoint")  # the segmenter, as `ddpm export` writes it
    assert weights.status_code == 200
    assert f"ddpm-job{job['id']}-segmenter.safetensors" in weights.headers["content-disposition"]
    assert _safetensors_metadata(weights.content)["layout"] == "segmenter"


def test_study_end_to_end_on_an_eval_dataset(stack, worker, pretrained):
    client = stack.client
    assert wait_job(client, pretrained["id"], timeout=180)["status"] == "succeeded"
    train, held = _labelled(client, "study-train", range(5)), _labelled(client, "study-eval", range(10, 12))
    cfg = {**FT, "model": {**FT["model"], "iterations": 2, "freq_metrics": 2, "freq_checkpoint": 2}}
    r = client.post("/api/jobs", json={"kind": "study", "device": "cpu", "source_job_id": pretrained["id"],
                                       "dataset_id": train, "eval_dataset_id": held, "config": cfg,
                                       "labels": [1, 2], "seeds": 1})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["progress"]["total"] == 2 * 2 * 2
    final = wait_job(client, job["id"], timeout=300)
    assert final["status"] == "succeeded", final["error"]
    assert final["progress"]["step"] == 8
    study = client.get(f"/api/jobs/{job['id']}/study").json()
    assert study["complete"] and study["budgets"] == [1, 2] and len(study["runs"]) == 4
    assert [row["labelled_cases"] for row in study["summary"]] == [1, 2]
    assert all(row[arm]["n"] == 1 for row in study["summary"] for arm in ("scratch", "pretrained"))
    png = client.get(f"/api/jobs/{job['id']}/study.png")
    assert png.status_code == 200 and Image.open(io.BytesIO(png.content)).size[0] > 100
    assert get_job(client, job["id"])["labels"] == [1, 2]


def test_study_without_eval_dataset_holds_out_cases_first(stack, worker, pretrained):
    client = stack.client
    assert wait_job(client, pretrained["id"], timeout=180)["status"] == "succeeded"
    labelled = _labelled(client, "study-one-set", range(20, 25))
    cfg = {**FT, "model": {**FT["model"], "iterations": 2, "freq_metrics": 2, "freq_checkpoint": 2}}
    r = client.post("/api/jobs", json={"kind": "study", "device": "cpu", "source_job_id": pretrained["id"],
                                       "dataset_id": labelled, "config": cfg, "labels": [1], "seeds": 1})
    assert r.status_code == 201, r.text
    final = wait_job(client, r.json()["id"], timeout=240)
    assert final["status"] == "succeeded", final["error"]
    study = client.get(f"/api/jobs/{final['id']}/study").json()
    assert study["complete"] and len(study["runs"]) == 2
    # the evaluation cases were set aside before any run drew its labelled cases
    data = stack.data_dir / "runs" / str(final["id"]) / "data"
    held = {p.name for p in (data / "eval" / "images").iterdir()}
    trained = {p.name for p in (data / "train" / "images").iterdir()}
    assert len(held) == 1 and len(trained) == 4 and not held & trained


def test_sigkilled_study_continues_on_another_worker_without_redoing_finished_runs(stack, start_worker, pretrained):
    client = stack.client
    a = start_worker("d")
    assert wait_job(client, pretrained["id"], timeout=180)["status"] == "succeeded"
    train, held = _labelled(client, "kill-train", range(30, 35)), _labelled(client, "kill-eval", range(40, 42))
    iterations = 30
    cfg = {**FT, "model": {**FT["model"], "iterations": iterations, "freq_metrics": 30, "freq_checkpoint": 5}}
    r = client.post("/api/jobs", json={"kind": "study", "device": "cpu", "source_job_id": pretrained["id"],
                                       "dataset_id": train, "eval_dataset_id": held, "config": cfg,
                                       "labels": [1, 2], "seeds": 1})
    assert r.status_code == 201, r.text
    job = r.json()
    # killed inside the second run, after a checkpoint of it
    wait_job(client, job["id"], what="a checkpoint in the second run", timeout=240,
             until=lambda j: (j["checkpoint_step"] or 0) > iterations + 5 or j["status"] not in ("queued", "running"))
    a.kill()
    start_worker("e")
    final = wait_job(client, job["id"], timeout=300)
    assert final["status"] == "succeeded", final["error"]
    assert final["attempts"] == 2 and final["progress"]["step"] == 4 * iterations
    log = job_log(client, job["id"])
    assert re.search(r"study run 1/4 scratch-n1-s1: skipped", log), log[-3000:]  # done before the kill
    assert "resuming from" in log
    assert len(client.get(f"/api/jobs/{job['id']}/study").json()["runs"]) == 4


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_2d_finetune_from_scratch_predicts_png_masks_on_the_image_grid(stack, worker):
    client = stack.client
    files = []
    for i in range(5):  # 20x24 pixels: a bright box (class 1) on a dark ground
        label = np.zeros((20, 24), np.uint8)
        label[4 + i % 3:14, 5:17 + i % 4] = 1
        files += [(f"shapes/images/s{i}.png", _png(40 + 150 * label)), (f"shapes/labels/s{i}.png", _png(label))]
    ds = upload_dataset(client, "shapes-labelled", files)
    cfg = {"gpu": -1, "is_3d": False, "task": {"num_classes": 2},
           "model": {"unet": {"dim": 8, "channel_mults": [1, 2], "res_blocks": 1, "attn_res": [], "num_head_channels": 8},
                     "iterations": 2, "freq_metrics": 2, "freq_checkpoint": 2},
           "dataset": {"image_size": 16, "batch_size": 2}}
    job = _finetune(client, dataset_id=ds, config=cfg)
    final = wait_job(client, job["id"], timeout=180)
    assert final["status"] == "succeeded", final["error"]
    [prediction] = client.get(f"/api/jobs/{job['id']}/predictions").json()
    mask = client.get(prediction["label_url"])
    assert mask.headers["content-disposition"].endswith(f'job{job["id"]}-{prediction["case"]}-prediction.png"')
    assert np.asarray(Image.open(io.BytesIO(mask.content))).shape == (20, 24)  # the image's own grid
    assert client.get(prediction["image_url"]).headers["content-type"] == "image/png"
