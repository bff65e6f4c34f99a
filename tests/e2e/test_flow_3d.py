"""The 3D path through the app in a real browser: upload a NIfTI folder (with one bad file),
commit, view a volume, launch a tiny 3D job from a preset, watch it train live, sample, view
the sample in NiiVue (multiplanar, 3D render, colormap, contrast) and download it."""
from __future__ import annotations

import re

import nibabel as nib
import numpy as np
import pytest
from playwright.sync_api import expect

from ddpm.config import DEFAULT_SAMPLER
from e2e_data import SPACING, nifti_folder
from e2e_ui import (canvas_pixels, canvas_stats, path_tail, read_safetensors_header, shot,
                    wait_viewer_loaded, watch_job)

ITERATIONS = 100  # long enough (several seconds, four metric steps) to watch the bar and chart move
FREQ_METRICS = 25


def api_refusal(stack, path: str, data: bytes) -> str:  # noqa: ANN001
    """What the API itself says about a file, to compare with what the page shows."""
    ds = stack.client.post("/api/datasets", json={"name": "scratch"}).json()
    r = stack.client.put(f"/api/datasets/{ds['id']}/files/{path}", content=data,
                         headers={"Content-Type": "application/octet-stream"})
    stack.client.delete(f"/api/datasets/{ds['id']}")
    assert r.status_code in (400, 413, 415, 422), r.text
    return r.json()["detail"]


@pytest.mark.timeout(600)
def test_3d_upload_train_sample_view(page, stack, tmp_path):  # noqa: ANN001
    folder = nifti_folder(tmp_path, n=5, size=20, bad=True)
    bad_rel = "phantoms/notes/bad.nii.gz"
    expected_reason = path_tail(api_refusal(stack, bad_rel, (folder / "notes" / "bad.nii.gz").read_bytes()), bad_rel)

    # --- Datasets: upload the folder through the folder input -----------------------------
    page.goto("/datasets")
    page.get_by_label("Choose folder").set_input_files(folder)
    expect(page.get_by_label("Dataset name")).to_have_value("phantoms")
    page.get_by_role("button", name="Start upload").click()
    commit = page.get_by_role("button", name="Commit dataset")
    commit.wait_for()
    bar = page.get_by_role("progressbar", name="Upload progress")
    assert "5 / 6 files" in bar.get_attribute("aria-valuetext")
    failed = page.get_by_label("Failed files")
    assert bad_rel in failed.inner_text()
    assert expected_reason in failed.inner_text()  # the server's own words
    # the server refused the file itself (it would be refused again): no retry is offered
    expect(page.get_by_role("button", name="Retry failed")).to_have_count(0)
    assert failed.inner_text().count(bad_rel) == 1
    shot(page, "3d-01-datasets-upload")
    commit.click()

    # --- Dataset detail: files with shape/spacing/dtype, view one in NiiVue ---------------
    page.wait_for_url(re.compile(r"/datasets/\d+$"))
    dataset_id = int(page.url.rsplit("/", 1)[1])
    files = page.get_by_role("table", name="Files")
    expect(files.locator("tbody tr")).to_have_count(5)
    expect(files.get_by_role("button", name="View phantoms/scan set #2/vol 4é.nii.gz")).to_be_visible()
    row = files.locator("tbody tr", has_text="phantoms/sub/vol1.nii.gz")
    assert "20 × 20 × 20" in row.inner_text()
    assert "1 × 1.25 × 2 mm" in row.inner_text()
    assert "float32" in row.inner_text()
    page.get_by_role("button", name="View phantoms/sub/vol1.nii.gz").click()
    wait_viewer_loaded(page)
    stats = canvas_stats(canvas_pixels(page))
    assert stats["drawn"] > 0.15 and stats["levels"] > 30, stats  # slices of a blob, not a blank canvas
    shot(page, "3d-02-dataset-detail")

    # --- New job: preset, a server validation message next to its field, then start -------
    page.get_by_role("link", name="New training job").click()
    page.wait_for_url(re.compile(rf"/jobs/new\?dataset={dataset_id}$"))
    expect(page.get_by_role("button", name="3D tiny")).to_have_attribute("aria-pressed", "true")
    count = page.get_by_test_id("param-estimate")
    expect(count).to_have_text(re.compile(r"^[\d,]+ parameters"))  # the server's exact count (test_new_job_form)
    tiny_count = count.inner_text()
    page.get_by_role("button", name="3D small").click()
    expect(count).not_to_have_text(tiny_count)
    expect(page.get_by_label("Image size")).to_have_value("32")
    page.get_by_role("button", name="3D tiny").click()
    expect(page.get_by_label("Image size")).to_have_value("16")
    page.get_by_label("Base channels").fill("12")  # the engine wants a multiple of 8
    page.get_by_role("button", name="Start training").click()
    dim_error = page.locator("#cfg-model-unet-dim-err")
    dim_error.wait_for()
    assert "multiple of 8" in dim_error.inner_text()
    expect(page.get_by_label("Base channels")).to_have_attribute("aria-invalid", "true")
    shot(page, "3d-03-new-job-validation")
    page.get_by_label("Base channels").fill("8")
    page.get_by_label("Iterations").fill(str(ITERATIONS))
    page.get_by_label("Metrics every (steps)").fill(str(FREQ_METRICS))
    page.get_by_label("Checkpoint every (steps)").fill("100")
    page.get_by_label("Device").select_option("cpu")
    page.get_by_role("button", name="Start training").click()

    # --- Job page: progress bar and loss chart move while it trains ------------------------
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    page.get_by_role("progressbar", name="Training progress").wait_for()
    seen = watch_job(page, "Training progress")
    assert seen[-1]["status"] == "succeeded", (seen[-3:], stack.logs())
    values = [s["value"] for s in seen if s["status"] == "running"]
    points = [s["points"] for s in seen if s["status"] == "running"]
    assert any(0 < v < 100 for v in values), values  # the bar moved while running
    assert len({p for p in points if p > 0}) >= 2, points  # the chart grew while running
    assert any(re.search(r"(it/s|s/it)$", s["speed"] or "") for s in seen if s["status"] == "running"), seen
    assert page.get_by_role("progressbar", name="Training progress").get_attribute("aria-valuenow") == "100"
    assert page.get_by_test_id("job-step").inner_text() == f"{ITERATIONS} / {ITERATIONS}"
    # the live training loss and every held-out point: at least one point per metric step
    page.wait_for_function(
        f"+document.querySelector('[data-testid=loss-chart]').dataset.points >= {ITERATIONS // FREQ_METRICS}")
    chart_points = page.get_by_test_id("loss-chart").get_attribute("data-points")
    page.get_by_label("Log scale").check()  # the chart is rebuilt on a log axis with the same points
    expect(page.get_by_test_id("loss-chart")).to_have_attribute("data-points", chart_points)
    expect(page.locator(".u-legend")).to_contain_text("held-out loss")
    page.get_by_text(f"All metrics at step {ITERATIONS}").click()
    expect(page.get_by_label("Latest metrics")).to_contain_text("val_loss")
    api_metrics = stack.client.get(f"/api/jobs/{job_id}/metrics").json()
    assert [m["step"] for m in api_metrics] == list(range(FREQ_METRICS, ITERATIONS + 1, FREQ_METRICS))
    previews = page.locator(".gallery-groups img")
    previews.first.wait_for()
    assert previews.count() >= ITERATIONS // FREQ_METRICS
    assert page.evaluate("() => [...document.querySelectorAll('.gallery-groups img')].every(i => i.naturalWidth > 0)")
    page.get_by_text("Log", exact=True).click()
    assert page.get_by_label("Job log").inner_text().strip() not in ("", "(empty)")
    shot(page, "3d-04-job-succeeded")
    with page.expect_download() as dl:
        page.get_by_role("link", name="Download checkpoint").click()
    weights = (tmp_path / "ckpt.safetensors")
    dl.value.save_as(weights)
    header = read_safetensors_header(weights.read_bytes())
    assert any(k != "__metadata__" for k in header), "no tensors in the checkpoint"

    # --- Samples: launch, then view in NiiVue ---------------------------------------------
    page.get_by_role("button", name="Sample from this model").click()
    page.wait_for_url(re.compile(rf"/samples\?source={job_id}$"))
    expect(page.get_by_label("Model")).to_have_value(str(job_id))
    # the form starts from the API's defaults: the one default sampler of ddpm.config
    expect(page.get_by_label("Sampler")).to_have_value(DEFAULT_SAMPLER.value)
    page.get_by_label("Number of samples").fill("2")
    page.get_by_label("Sampler").select_option("ddim")
    page.get_by_label("Steps").fill("10")
    page.get_by_label("Seed").fill("1")
    shot(page, "3d-05-samples-launch")
    page.get_by_role("button", name="Generate samples").click()
    page.wait_for_url(re.compile(r"/samples/\d+$"))
    page.get_by_role("button", name="View sample 1").wait_for(timeout=180_000)
    expect(page.get_by_test_id("sample-params")).to_have_text("2 samples · ddim · 10 steps · seed 1")
    wait_viewer_loaded(page)
    multiplanar = canvas_pixels(page)
    s_mp = canvas_stats(multiplanar)
    assert s_mp["drawn"] > 0.15 and s_mp["levels"] > 30, s_mp
    shot(page, "3d-06-sample-multiplanar")

    page.get_by_label("View mode").select_option("render")
    page.wait_for_timeout(1000)
    render = canvas_pixels(page)
    s_r = canvas_stats(render)
    assert s_r["drawn"] > 0.05 and s_r["levels"] > 30, s_r
    assert np.abs(render.astype(float) - multiplanar).mean() > 5  # a different picture
    shot(page, "3d-07-sample-render")

    page.get_by_label("Colormap").select_option("hot")
    page.wait_for_timeout(500)
    s_hot = canvas_stats(canvas_pixels(page))
    assert s_hot["colour"] > 40 > s_r["colour"], (s_hot, s_r)  # grey became red/yellow
    page.get_by_label("Colormap").select_option("gray")
    page.get_by_label("View mode").select_option("multiplanar")
    page.wait_for_timeout(500)
    before = canvas_stats(canvas_pixels(page))["mean"]
    slider = page.get_by_label("Contrast minimum")
    slider.fill(slider.get_attribute("max"))  # window floor at the top: the slices go black
    page.wait_for_timeout(500)
    after = canvas_stats(canvas_pixels(page))["mean"]
    assert after < before - 10, (before, after)

    page.get_by_role("button", name="View sample 1").click()
    wait_viewer_loaded(page)
    expect(page.get_by_text("Showing sample 1")).to_be_visible()

    # --- Download a sample and read it back ------------------------------------------------
    with page.expect_download() as dl:
        page.get_by_role("link", name="Download sample 0").click()
    assert dl.value.suggested_filename.endswith(".nii.gz")
    path = tmp_path / "sample0.nii.gz"
    dl.value.save_as(path)
    img = nib.load(str(path))
    data = np.asarray(img.dataobj)
    assert data.shape[:3] == (16, 16, 16)
    assert np.isfinite(data).all() and data.std() > 0
    # keep_aspect pads the 20-voxel volumes to a cube of their longest extent, resized to 16
    expected_mm = max(20 * s for s in SPACING) / 16
    assert np.allclose(img.header.get_zooms()[:3], expected_mm, rtol=1e-3), img.header.get_zooms()
