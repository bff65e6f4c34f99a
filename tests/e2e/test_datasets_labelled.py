"""Datasets in a real browser: a labelled folder (images/ + labels/) uploaded through the folder
input, its pairs, classes and voxels listed, and a label drawn over its image in NiiVue (legend,
opacity); a file the commit names removed from the upload so the rest commits; the file table's
orientation column whole at 1280 px."""
from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from playwright.sync_api import expect

from e2e_ui import canvas_pixels, canvas_stats, shot, wait_viewer_loaded

SIZE = 24


def labelled_folder(root: Path, cases: int = 2, unpaired: bool = False) -> Path:
    """root/seg/images/case{i}.nii.gz (a grey ball) + root/seg/labels/case{i}.nii.gz (class 1: the
    ball, class 2: a slab), LPS-oriented so the orientation column has something to say."""
    folder = root / "seg"
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    zz, yy, xx = np.mgrid[:SIZE, :SIZE, :SIZE]
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    for i in range(cases + (1 if unpaired else 0)):
        ball = np.hypot(np.hypot(zz - 12, yy - 12), xx - 12) < 6 + i
        image = (ball * 600 + 200 + np.random.default_rng(i).normal(0, 20, ball.shape)).astype(np.float32)
        nib.save(nib.Nifti1Image(image, affine), str(folder / "images" / f"case{i}.nii.gz"))
        if i < cases:
            label = ball.astype(np.uint8)
            label[:, :, :4] = 2
            nib.save(nib.Nifti1Image(label, affine), str(folder / "labels" / f"case{i}.nii.gz"))
    return folder


def upload(page, folder: Path) -> None:  # noqa: ANN001
    page.goto("/datasets")
    page.get_by_label("Choose folder").set_input_files(folder)
    page.get_by_role("button", name="Start upload").click()
    page.get_by_role("button", name="Commit dataset").wait_for()


@pytest.mark.timeout(300)
def test_labelled_folder_shows_pairs_and_label_overlay(page, stack, tmp_path):  # noqa: ANN001
    upload(page, labelled_folder(tmp_path))
    page.get_by_role("button", name="Commit dataset").click()
    page.wait_for_url(re.compile(r"/datasets/\d+$"))

    pairs = page.get_by_role("region", name="Labelled pairs")
    expect(pairs.get_by_role("heading")).to_contain_text("2 labelled pairs")
    classes = pairs.get_by_role("table", name="Classes")
    expect(classes.locator("tbody tr")).to_have_count(3)  # 0 (background), 1, 2
    expect(pairs.get_by_role("table", name="Pairs").locator("tbody tr")).to_have_count(2)
    slab = SIZE * SIZE * 4
    expect(classes.locator("tbody tr").nth(2)).to_contain_text(f"{2 * slab:,}")  # class 2 over both labels

    files = page.get_by_role("table", name="Files")
    expect(files.locator("tbody tr")).to_have_count(4)
    expect(files.locator("thead")).to_contain_text("Orientation")
    expect(files.locator("tbody tr").first).to_contain_text("LPS")
    box = files.locator("xpath=ancestor::section[1]")
    assert box.evaluate("e => e.scrollWidth <= e.clientWidth"), "the file table is cut at 1280 px"

    # the image alone: grey; with its label: coloured where the classes are
    page.get_by_role("button", name="View seg/images/case0.nii.gz").click()
    wait_viewer_loaded(page)
    grey = canvas_stats(canvas_pixels(page))
    pairs.get_by_role("button", name="View case0 with its label").click()
    wait_viewer_loaded(page)
    legend = page.get_by_role("list", name="Legend")
    expect(legend).to_contain_text("class 1")
    expect(legend).to_contain_text("class 2")
    expect(page.get_by_role("region", name="Volume viewer")).to_contain_text("with seg/labels/case0.nii.gz")
    overlaid = canvas_stats(canvas_pixels(page))
    assert overlaid["drawn"] > 0.05 and overlaid["colour"] > grey["colour"] + 20, (grey, overlaid)
    shot(page, "labelled-01-overlay")
    page.get_by_label("Label opacity").fill("0")
    page.wait_for_timeout(500)
    hidden = canvas_stats(canvas_pixels(page))
    assert hidden["colour"] < overlaid["colour"] - 20, (hidden, overlaid)


@pytest.mark.timeout(300)
def test_file_named_by_the_commit_is_removed_and_the_rest_commits(page, stack, tmp_path):  # noqa: ANN001
    upload(page, labelled_folder(tmp_path, cases=1, unpaired=True))
    page.get_by_role("button", name="Commit dataset").click()
    errors = page.get_by_label("Commit errors")
    expect(errors).to_contain_text("seg/images/case1.nii.gz has no label")
    expect(page.get_by_text("Uploaded files (3)")).to_be_visible()
    errors.get_by_role("button", name="Remove seg/images/case1.nii.gz").click()
    expect(errors).to_have_count(0)
    expect(page.get_by_text("Uploaded files (2)")).to_be_visible()
    page.get_by_role("button", name="Commit dataset").click()
    page.wait_for_url(re.compile(r"/datasets/\d+$"))
    dataset_id = int(page.url.rsplit("/", 1)[1])
    expect(page.get_by_role("table", name="Files").locator("tbody tr")).to_have_count(2)
    files = stack.client.get(f"/api/datasets/{dataset_id}").json()["files"]
    assert sorted(f["path"] for f in files) == ["seg/images/case0.nii.gz", "seg/labels/case0.nii.gz"]


@pytest.mark.timeout(300)
def test_remove_button_on_an_uncommitted_dataset_page(page, stack, tmp_path):  # noqa: ANN001
    upload(page, labelled_folder(tmp_path, cases=1, unpaired=True))
    ds = stack.client.get("/api/datasets").json()[0]
    page.goto(f"/datasets/{ds['id']}")
    files = page.get_by_role("table", name="Files")
    expect(files.locator("tbody tr")).to_have_count(3)
    files.get_by_role("button", name="Remove seg/images/case1.nii.gz").click()
    expect(files.locator("tbody tr")).to_have_count(2)
    page.get_by_role("button", name="Commit dataset").click()
    expect(page.locator(".page-head .badge").first).to_have_text("ready")
    expect(files.get_by_role("button", name=re.compile("^Remove"))).to_have_count(0)


@pytest.mark.timeout(300)
def test_2d_png_masks_drawn_over_their_images(page, stack, tmp_path):  # noqa: ANN001
    from PIL import Image

    folder = tmp_path / "masks"
    for sub in ("images", "labels"):
        (folder / sub).mkdir(parents=True)
    yy, xx = np.mgrid[:32, :32]
    for i in range(2):
        disc = np.hypot(yy - 16, xx - 16) < 8 + i
        Image.fromarray((disc * 150 + 50).astype(np.uint8), "L").save(folder / "images" / f"x{i}.png")
        mask = disc.astype(np.uint8)
        mask[:4] = 2
        Image.fromarray(mask, "L").save(folder / "labels" / f"x{i}.png")
    upload(page, folder)
    page.get_by_role("button", name="Commit dataset").click()
    page.wait_for_url(re.compile(r"/datasets/\d+$"))
    pairs = page.get_by_role("region", name="Labelled pairs")
    expect(pairs.get_by_role("table", name="Classes").locator("tbody tr")).to_have_count(3)
    pairs.get_by_role("button", name="View x0 with its label").click()
    page.locator("section.viewer[data-state=loaded]").wait_for()
    expect(page.get_by_role("list", name="Legend")).to_contain_text("class 2")
    canvas = page.get_by_test_id("overlay-2d-canvas")

    def colour() -> float:
        import io

        rgb = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB")).astype(float)
        return float((rgb.max(axis=2) - rgb.min(axis=2)).mean())

    shown = colour()
    assert shown > 20, shown  # the grey image alone has none
    page.get_by_label("Label opacity").fill("0")
    page.wait_for_timeout(300)
    assert colour() < 2
    shot(page, "labelled-02-overlay-2d")
