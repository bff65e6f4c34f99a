"""The 2D path in a real browser: a folder of PNGs, a 2D preset chosen from the dataset's
kind, training to success, and samples shown as an image grid and downloaded."""
from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from playwright.sync_api import expect

from ddpm.config import DEFAULT_SAMPLER

from e2e_data import png_folder
from e2e_ui import shot, watch_job


@pytest.mark.timeout(600)
def test_2d_upload_train_sample_grid(page, stack, tmp_path):  # noqa: ANN001
    folder = png_folder(tmp_path, n=8, size=16)
    page.goto("/datasets")
    page.get_by_label("Choose folder").set_input_files(folder)
    expect(page.get_by_label("Dataset name")).to_have_value("shapes")
    page.get_by_role("button", name="Start upload").click()
    page.get_by_role("button", name="Commit dataset").wait_for()
    expect(page.get_by_role("progressbar", name="Upload progress")).to_have_attribute("aria-valuenow", "100")
    assert page.get_by_label("Failed files").count() == 0
    page.get_by_role("button", name="Commit dataset").click()

    page.wait_for_url(re.compile(r"/datasets/\d+$"))
    expect(page.get_by_text("2D · 8 files")).to_be_visible()
    files = page.get_by_role("table", name="Files")
    expect(files.locator("tbody tr")).to_have_count(8)
    assert "16 × 16" in files.locator("tbody tr", has_text="shapes/img03.png").inner_text()
    page.get_by_role("button", name="View shapes/img03.png").click()
    img = page.get_by_role("img", name="shapes/img03.png")
    expect(img).to_be_visible()
    page.wait_for_function("() => document.querySelector('.image-preview img')?.naturalWidth === 16")
    shot(page, "2d-01-dataset-detail")

    page.get_by_role("link", name="New training job").click()
    # the dataset is 2D, so the form switched to the 2D preset of the same size
    expect(page.get_by_role("button", name="2D tiny")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_label("3D volumes")).not_to_be_checked()
    expect(page.get_by_label("Dataset type")).to_have_value("image2d")
    expect(page.get_by_test_id("param-estimate")).to_have_text(re.compile(r"^[\d,]+ parameters"))  # the server's count
    page.get_by_label("Image size").fill("16")  # the PNGs' own size
    page.get_by_label("Iterations").fill("40")
    page.get_by_label("Metrics every (steps)").fill("20")
    page.get_by_label("Samples per metric step").fill("2")
    shot(page, "2d-02-new-job")
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    seen = watch_job(page, "Training progress")
    assert seen[-1]["status"] == "succeeded", (seen[-3:], stack.logs())
    expect(page.locator(".gallery-group h3")).to_have_text(["Step 40", "Step 20"])
    shot(page, "2d-03-job-succeeded")

    # the Jobs list shows it with its badge
    page.get_by_role("link", name="Jobs", exact=True).click()
    row = page.get_by_role("table", name="Jobs").locator("tbody tr", has_text=f"train #{job_id}")
    expect(row.locator(".badge")).to_have_text("succeeded")
    shot(page, "2d-04-jobs-list")

    page.get_by_role("link", name="Samples", exact=True).click()
    page.get_by_label("Model").select_option(str(job_id))
    page.get_by_label("Number of samples").fill("4")
    page.get_by_label("Steps").fill("8")
    # the form's defaults (sampler, ...) come from the served OpenAPI document: until they are
    # there the button waits, so a quick click cannot send an empty sampler
    expect(page.get_by_label("Sampler")).to_have_value(DEFAULT_SAMPLER.value)
    page.get_by_role("button", name="Generate samples").click()
    expect(page).to_have_url(re.compile(r"/samples/\d+$"), timeout=60_000)
    grid = page.get_by_label("Sample images")
    grid.wait_for(timeout=180_000)
    expect(grid.locator("img")).to_have_count(4)
    page.wait_for_function("() => [...document.querySelectorAll('[aria-label=\"Sample images\"] img')]"
                           ".every(i => i.complete && i.naturalWidth === 16)")
    assert page.locator("canvas").count() == 0  # 2D samples get no 3D viewer
    shot(page, "2d-05-sample-grid")
    with page.expect_download() as dl:
        page.get_by_role("link", name="Download sample 2").click()
    im = Image.open(io.BytesIO(open(dl.value.path(), "rb").read()))
    assert im.size == (16, 16)
