"""Fine-tuning in a real browser: upload a labelled folder (images/ + labels/), open a finished
tiny train job, "Fine-tune" it on that folder from the schema-generated form, watch the Dice
chart, and see the held-out case's predicted label map over its image in NiiVue (legend,
opacity), downloadable under the server's name."""
from __future__ import annotations

import gzip
import re
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from playwright.sync_api import expect

from e2e_ui import canvas_pixels, shot, wait_viewer_loaded

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))  # the engine tests' tiny labelled phantoms

from finetune_helpers import SHAPE, phantom, write_labelled  # noqa: E402

UNET = {"dim": 8, "channel_mults": [1, 2], "res_blocks": 1, "attn_res": [], "num_head_channels": 8}
PRETRAIN = {"gpu": -1, "is_3d": True, "model": {"unet": UNET, "iterations": 4, "freq_metrics": 4,
                                                "freq_checkpoint": 4, "metric_samples": 1, "metric_steps": 2},
            "dataset": {"name": "volume3d", "image_size": 16, "batch_size": 2, "num_workers": 0}}


@pytest.fixture(scope="module")
def train_id(stack) -> int:  # noqa: ANN001
    """A 4-step 3D train job on the phantoms' images, run by the stack's worker."""
    c = stack.client
    ds = c.post("/api/datasets", json={"name": "phantom-images"}).json()["id"]
    for i in range(3):
        img = nib.Nifti1Image(phantom(i)[0], np.eye(4))
        r = c.put(f"/api/datasets/{ds}/files/vols/p{i}.nii.gz", content=gzip.compress(img.to_bytes()),
                  headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 201, r.text
    assert c.post(f"/api/datasets/{ds}/commit").status_code == 200
    job = c.post("/api/jobs", json={"kind": "train", "dataset_id": ds, "config": PRETRAIN, "device": "cpu"}).json()
    deadline = time.monotonic() + 180
    while (status := c.get(f"/api/jobs/{job['id']}").json()["status"]) not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, "the train job did not finish"
        time.sleep(0.3)
    assert status == "succeeded", stack.logs()
    return job["id"]


def coloured_share(rgb: np.ndarray) -> float:
    """Share of pixels with a strong hue (the overlay's class colours; the image is grey)."""
    spread = rgb.max(axis=2).astype(int) - rgb.min(axis=2)
    return float((spread > 60).mean())


@pytest.mark.timeout(600)
def test_upload_labelled_folder_finetune_and_see_the_prediction_overlay(page, stack, train_id, tmp_path):  # noqa: ANN001
    folder = write_labelled(tmp_path / "phantoms-labelled", n=5)

    page.goto("/datasets")
    page.get_by_label("Choose folder").set_input_files(folder)
    page.get_by_role("button", name="Start upload").click()
    page.get_by_role("button", name="Commit dataset").click()
    page.wait_for_url(re.compile(r"/datasets/\d+$"))
    dataset_id = int(page.url.rsplit("/", 1)[1])

    page.goto(f"/jobs/{train_id}")
    page.get_by_role("button", name="Fine-tune").click()
    page.wait_for_url(re.compile(rf"/jobs/finetune\?source={train_id}$"))
    expect(page.get_by_role("heading", name=f"Fine-tune train job #{train_id}")).to_be_visible()
    page.get_by_label("Labelled dataset", exact=True).select_option(str(dataset_id))
    # the form starts from the train job's model (its image size), fine-tune defaults otherwise
    expect(page.get_by_label("Image size")).to_have_value("16")
    page.get_by_label("Classes").fill("3")
    page.get_by_label("Iterations").fill("6")
    page.get_by_label("Metrics every (steps)").fill("3")
    page.get_by_label("Checkpoint every (steps)").fill("3")
    page.get_by_label("Device").select_option("cpu")
    shot(page, "ft-01-form")
    page.get_by_role("button", name="Start fine-tuning").click()

    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    expect(page.get_by_role("heading", name=f"Fine-tune job #{job_id}")).to_be_visible()
    expect(page.locator(".page-head .badge")).to_have_text("succeeded", timeout=240_000)
    expect(page.get_by_test_id("dice-chart")).to_have_attribute("data-points", "2")
    expect(page.locator(".u-legend")).to_contain_text("class 2")
    evaluation = page.get_by_role("region", name="Evaluation")
    expect(evaluation.get_by_test_id("mean-dice")).to_have_text(re.compile(r"^\d+\.\d%$"))
    expect(evaluation.get_by_role("table", name="Dice per case").locator("tbody tr")).to_have_count(2)  # case + mean

    predictions = page.get_by_role("region", name="Predictions")
    wait_viewer_loaded(page)
    legend = predictions.get_by_role("list", name="Legend")
    expect(legend).to_contain_text("class 1")
    expect(legend).to_contain_text("class 2")
    page.get_by_label("View mode").select_option("axial")
    page.wait_for_timeout(500)
    shown = coloured_share(canvas_pixels(page))
    shot(page, "ft-02-prediction-overlay")
    page.get_by_label("Label opacity").fill("0")
    page.wait_for_timeout(500)
    hidden = coloured_share(canvas_pixels(page))
    # the overlay draws the classes in colour (the crosshair is coloured too, at any opacity)
    assert shown - hidden > 0.01, (shown, hidden)

    case = stack.client.get(f"/api/jobs/{job_id}/predictions").json()[0]["case"]
    with page.expect_download() as dl:
        predictions.get_by_role("link", name="Download label map").click()
    assert dl.value.suggested_filename == f"job{job_id}-{case}-prediction.nii.gz"
    label = nib.load(dl.value.path().rename(tmp_path / "pred.nii.gz"))
    assert label.shape == SHAPE


@pytest.mark.timeout(600)
def test_study_job_page_draws_dice_against_labelled_cases(page, stack, train_id, tmp_path):  # noqa: ANN001
    folder = write_labelled(tmp_path / "study-set", n=5, start=10)
    c = stack.client
    ds = c.post("/api/datasets", json={"name": "study-set"}).json()["id"]
    for f in sorted(folder.rglob("*.nii.gz")):
        rel = f.relative_to(folder.parent).as_posix()
        assert c.put(f"/api/datasets/{ds}/files/{rel}", content=f.read_bytes(),
                     headers={"Content-Type": "application/octet-stream"}).status_code == 201
    assert c.post(f"/api/datasets/{ds}/commit").status_code == 200
    cfg = {"gpu": -1, "task": {"num_classes": 3}, "model": {"iterations": 2, "freq_metrics": 2, "freq_checkpoint": 2}}
    r = c.post("/api/jobs", json={"kind": "study", "device": "cpu", "source_job_id": train_id, "dataset_id": ds,
                                  "config": cfg, "labels": [1, 2], "seeds": 1})
    assert r.status_code == 201, r.text
    page.goto(f"/jobs/{r.json()['id']}")
    expect(page.get_by_role("heading", name=f"Study job #{r.json()['id']}")).to_be_visible()
    expect(page.locator(".page-head .badge")).to_have_text("succeeded", timeout=240_000)
    study = page.get_by_role("region", name="Label efficiency")
    expect(study.get_by_test_id("study-chart")).to_have_attribute("data-points", "2")  # budgets 1 and 2
    expect(study.locator(".u-legend")).to_contain_text("pretrained (mean)")
    expect(study.get_by_role("table", name="Study summary").locator("tbody tr")).to_have_count(2)
    expect(study).to_contain_text("4 of 4 runs finished")
    shot(page, "ft-03-study")
