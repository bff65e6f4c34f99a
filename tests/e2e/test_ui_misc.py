"""Smaller browser checks: the login prompt on 401, the WebGL2-missing message, the raw JSON
editor with the server's errors, and the 1280x800 layout."""
from __future__ import annotations

import io
import json

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from conftest import API_TOKEN
from e2e_ui import canvas_pixels, canvas_stats, shot, wait_viewer_loaded


def ready_3d_dataset(client, name: str) -> int:  # noqa: ANN001
    """A committed one-volume dataset made through the REST API (not the point of these tests)."""
    img = nib.Nifti1Image(np.random.default_rng(1).random((12, 12, 12)).astype(np.float32), np.eye(4))
    raw = img.to_bytes()
    ds = client.post("/api/datasets", json={"name": name}).json()
    r = client.put(f"/api/datasets/{ds['id']}/files/{name}/v.nii", content=raw,
                   headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    assert client.post(f"/api/datasets/{ds['id']}/commit").status_code == 200
    return ds["id"]


def test_login_prompt_keeps_the_token_for_the_session(secured_page, secured_stack):  # noqa: ANN001
    page = secured_page
    page.goto("/datasets")
    dialog = page.get_by_role("dialog", name="Sign in")
    expect(dialog).to_be_visible()
    shot(page, "misc-01-login")
    page.get_by_label("API token").fill("wrong-token")
    page.get_by_role("button", name="Sign in").click()
    expect(dialog.get_by_text("The token was refused.")).to_be_visible()
    page.get_by_label("API token").fill(API_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_text("No datasets yet")).to_be_visible()

    secured_stack.client.post("/api/datasets", json={"name": "made-elsewhere"})
    page.reload()  # same tab session: no prompt, the token is still there
    expect(page.get_by_role("table", name="Datasets").get_by_text("made-elsewhere")).to_be_visible()
    expect(dialog).to_be_hidden()
    assert page.evaluate("() => sessionStorage.getItem('ddpm-studio.token')") == API_TOKEN


def test_viewer_says_so_without_webgl2(page, stack):  # noqa: ANN001
    ds = ready_3d_dataset(stack.client, "nogl")
    page.add_init_script("""
        const orig = HTMLCanvasElement.prototype.getContext;
        HTMLCanvasElement.prototype.getContext = function (kind, ...rest) {
            return kind === 'webgl2' ? null : orig.call(this, kind, ...rest);
        };""")
    page.goto(f"/datasets/{ds}")
    page.get_by_role("button", name="View nogl/v.nii").click()
    expect(page.get_by_role("alert").filter(has_text="needs WebGL2")).to_be_visible()
    assert page.locator("canvas").count() == 0


def test_json_editor_and_server_errors(page, stack):  # noqa: ANN001
    ds = ready_3d_dataset(stack.client, "json-edit")
    page.goto(f"/jobs/new?dataset={ds}")
    expect(page.get_by_label("Dataset", exact=True)).to_have_value(str(ds))
    page.get_by_role("tab", name="JSON").click()
    editor = page.get_by_label("Config JSON")
    cfg = json.loads(editor.input_value())
    first_3d = next(p for p in stack.client.get("/api/config/presets").json() if p["config"]["is_3d"])
    assert cfg == first_3d["config"]  # a 3D dataset starts from the first served 3D preset

    cfg["model"]["iterations"] = 77
    editor.fill(json.dumps(cfg))
    page.get_by_role("tab", name="Form").click()
    expect(page.get_by_label("Iterations")).to_have_value("77")

    page.get_by_role("tab", name="JSON").click()
    editor.fill("{ not json")
    page.get_by_role("tab", name="Form").click()
    expect(page.get_by_text("Invalid JSON")).to_be_visible()  # stays in the editor
    cfg["modle"] = {"lr": 1}
    cfg["model"]["optimizer"] = "sgd"
    editor.fill(json.dumps(cfg))
    page.get_by_role("button", name="Start training").click()
    errors = page.get_by_label("Validation errors")
    expect(errors).to_contain_text("modle")
    expect(errors).to_contain_text("did you mean 'model'")
    expect(errors).to_contain_text("model.optimizer")
    shot(page, "misc-02-json-errors")
    page.get_by_role("tab", name="Form").click()  # the optimizer error sits beside its field
    expect(page.locator("#cfg-model-optimizer-err")).to_contain_text("sgd")


@pytest.mark.parametrize("path", ["/datasets", "/jobs/new", "/jobs", "/samples"])
def test_pages_fit_1280x800(page, stack, path):  # noqa: ANN001
    page.goto(path)
    page.get_by_role("heading", level=1).wait_for()
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    nav = page.get_by_role("navigation", name="Main")
    for name in ("Datasets", "New job", "Jobs", "Samples"):
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    shot(page, "page" + path.replace("/", "-"))


def test_dropping_files_on_the_drop_zone_picks_them(page, stack):  # noqa: ANN001
    page.goto("/datasets")
    zone = page.get_by_role("group", name="Drop a folder here")
    zone.evaluate("""el => {
        const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(348)], 'a.nii'));
        dt.items.add(new File([new Uint8Array(100)], 'b.png'));
        dt.items.add(new File(['x'], '.DS_Store'));
        el.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""")
    expect(page.get_by_text("2 files, 448 B (1 hidden files skipped)")).to_be_visible()
    expect(page.get_by_role("button", name="Start upload")).to_be_enabled()


def test_an_uncommitted_dataset_can_be_committed_from_its_page(page, stack):  # noqa: ANN001
    ds = stack.client.post("/api/datasets", json={"name": "later"}).json()
    page.goto(f"/datasets/{ds['id']}")
    page.get_by_role("button", name="Commit dataset").click()
    # no files: the server's reason is shown, and the dataset stays uploading
    other = stack.client.post("/api/datasets", json={"name": "empty"}).json()
    r = stack.client.post(f"/api/datasets/{other['id']}/commit")
    assert r.status_code in (409, 422)
    detail = r.json()["detail"]
    reason = detail if isinstance(detail, str) else detail[0]["msg"]
    expect(page.get_by_role("alert")).to_contain_text(reason)
    expect(page.locator(".page-head .badge")).to_have_text("uploading")


def test_viewer_and_images_carry_the_token(secured_page, secured_stack):  # noqa: ANN001
    """With API_TOKEN set, NiiVue gets the bearer token in its headers and images are fetched
    with it (a plain <img src> or NiiVue URL without the header would get 401)."""
    client = secured_stack.client
    vol = ready_3d_dataset(client, "secure-vol")
    ds = client.post("/api/datasets", json={"name": "secure-png"}).json()
    buf = io.BytesIO()
    Image.fromarray((np.arange(64).reshape(8, 8) * 4).astype(np.uint8), mode="L").save(buf, format="PNG")
    assert client.put(f"/api/datasets/{ds['id']}/files/p/a.png", content=buf.getvalue()).status_code == 201
    assert client.post(f"/api/datasets/{ds['id']}/commit").status_code == 200

    page = secured_page
    page.add_init_script(f"sessionStorage.setItem('ddpm-studio.token', {json.dumps(API_TOKEN)})")
    page.goto(f"/datasets/{vol}")
    page.get_by_role("button", name="View secure-vol/v.nii").click()
    wait_viewer_loaded(page)
    stats = canvas_stats(canvas_pixels(page))
    assert stats["drawn"] > 0.15 and stats["levels"] > 30, stats

    page.goto(f"/datasets/{ds['id']}")
    page.get_by_role("button", name="View p/a.png").click()
    page.wait_for_function("() => document.querySelector('.image-preview img')?.naturalWidth === 8")
    assert page.get_by_role("dialog", name="Sign in").count() == 0


def test_a_deleted_datasets_page_says_so_instead_of_showing_empty_controls(page, stack):  # noqa: ANN001
    ds = ready_3d_dataset(stack.client, "gone")
    assert stack.client.delete(f"/api/datasets/{ds}").status_code in (200, 204)
    page.goto(f"/datasets/{ds}")
    expect(page.get_by_text(f"There is no dataset {ds}: it was deleted, or never existed.")).to_be_visible()
    expect(page.get_by_role("table", name="Files")).to_have_count(0)
    for name in ("Delete dataset", "Commit dataset"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    page.get_by_role("link", name="See all datasets").click()
    expect(page.get_by_role("heading", name="Datasets", level=1)).to_be_visible()


def test_the_file_table_fits_1280_pixels(page, stack):  # noqa: ANN001
    """Long nested paths must not push the shape/spacing/dtype/size columns out of view."""
    # a 4D series with scanner spacing and the long unbroken names real exports have
    img = nib.Nifti1Image(np.zeros((128, 128, 12, 3), np.int16), np.diag([0.9765625, 0.9765625, 2.5, 1.0]))
    ds = stack.client.post("/api/datasets", json={"name": "bids"}).json()["id"]
    path = "ds000001_download_20240101/sub01_sesbaseline_acqmprage_run01_T1w_defaced_biascorrected_resampled.nii"
    assert stack.client.put(f"/api/datasets/{ds}/files/{path}", content=img.to_bytes()).status_code == 201
    assert stack.client.post(f"/api/datasets/{ds}/commit").status_code == 200
    page.goto(f"/datasets/{ds}")
    table = page.get_by_role("table", name="Files")
    table.wait_for()
    card = table.locator("xpath=ancestor::section[1]")
    card_box = card.bounding_box()
    for header in ("File", "Shape", "Spacing", "dtype", "Size"):
        box = table.get_by_role("columnheader", name=header, exact=True).bounding_box()
        assert box["x"] + box["width"] <= card_box["x"] + card_box["width"] + 1, (header, box, card_box)
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "misc-03-dataset-files-1280")
