"""The New-job form is the server's config schema, in a real browser: every field that
GET /api/config/schema serves has an input; choosing each served preset fills the form with
exactly that preset, and the page shows the parameter count of the U-Net the engine builds
from it; a bad value gets the server's live message beside its field before anything starts."""
from __future__ import annotations

import json

import pytest
import torch
from playwright.sync_api import expect

from ddpm.config import load_config
from ddpm.nn.unet import UNet
from e2e_ui import shot
from test_ui_misc import ready_3d_dataset

torch.set_num_threads(1)  # shared 2-core machine (the counts run on the meta device anyway)


def field_id(path: str) -> str:
    return "#cfg-" + path.replace(".", "-")


@pytest.fixture
def new_job_page(page, stack):  # noqa: ANN001
    ds = ready_3d_dataset(stack.client, "form")
    page.goto(f"/jobs/new?dataset={ds}")
    page.get_by_role("group", name="Preset").get_by_role("button").first.wait_for()
    return page


def test_every_served_field_has_an_input(new_job_page, stack):  # noqa: ANN001
    page = new_job_page
    served = stack.client.get("/api/config/schema").json()
    # the stack's workers are CPU-only: a field that needs a GPU is not offered (the next test)
    assert all(w["device"] == "cpu" for w in stack.client.get("/api/workers").json())
    fields = [f for f in served["kinds"]["train"]["fields"] if f["requires"] is None]
    assert len(fields) > 30
    for f in fields:
        box = page.locator(f'.field[data-path="{f["path"]}"]')
        expect(box).to_have_count(1)
        assert box.locator("label").text_content().startswith(f["label"]), f["path"]  # advanced ones are folded away
        assert page.locator(field_id(f["path"])).count() == 1, f["path"]
    titles = [g["title"] for g in served["groups"]]
    assert page.locator("fieldset.config-group legend").all_inner_texts() == titles
    # nothing in the form that the server did not serve
    assert page.locator(".config-groups .field").count() == len(fields)


def test_each_served_preset_fills_the_form_and_shows_the_engines_parameter_count(new_job_page, stack):  # noqa: ANN001
    page = new_job_page
    presets = [p for p in stack.client.get("/api/config/presets").json() if p["kind"] == "train"]
    assert presets
    buttons = page.get_by_role("group", name="Preset").get_by_role("button")
    expect(buttons).to_have_text([p["title"] for p in presets])
    for p in presets:
        page.get_by_role("tab", name="Form").click()
        buttons.filter(has_text=p["title"]).first.click()
        expect(buttons.filter(has_text=p["title"]).first).to_have_attribute("aria-pressed", "true")
        with torch.device("meta"):  # shapes only: no memory, no time
            n = sum(t.numel() for t in UNet.from_config(load_config(p["config"])).parameters())
        expect(page.get_by_test_id("param-estimate")).to_contain_text(f"{n:,} parameters")
        page.get_by_role("tab", name="JSON").click()
        shown = json.loads(page.get_by_label("Config JSON").input_value())
        # the preset with the keys it leaves out at their defaults: the same config to the engine
        assert load_config(shown) == load_config(p["config"]), p["name"]


def test_a_bad_value_gets_the_servers_message_beside_its_field_while_typing(new_job_page, stack):  # noqa: ANN001
    page = new_job_page
    jobs_before = stack.client.get("/api/jobs").json()
    page.get_by_label("Base channels").fill("12")  # the engine wants a multiple of 8
    err = page.locator("#cfg-model-unet-dim-err")
    expect(err).to_contain_text("multiple of 8")
    expect(page.get_by_test_id("param-estimate")).to_contain_text("parameters: —")
    expect(page.get_by_label("Base channels")).to_have_attribute("aria-invalid", "true")
    shot(page, "form-01-live-check")
    page.get_by_label("Base channels").fill("16")
    expect(err).to_have_count(0)
    expect(page.get_by_test_id("param-estimate")).to_contain_text("to train")
    assert stack.client.get("/api/jobs").json() == jobs_before  # checking started nothing


def test_gpu_field_only_with_a_gpu_worker_and_a_warning_for_emulated_bf16(new_job_page, stack):  # noqa: ANN001
    """Issue 13 items 10 and 12: the GPU index is offered only when a live worker has a GPU; bf16
    where every worker of the job's queue only emulates it gets a warning (the job may still start)."""
    page = new_job_page
    page.locator(field_id("seed")).wait_for(state="attached")
    assert page.locator(field_id("gpu")).count() == 0  # CPU-only workers
    from dataclasses import asdict

    from backend import leases, worker_registry
    from backend.db import open_database
    from backend.settings import Settings
    from ddpm.precision_rules import DeviceFacts

    factory = open_database(Settings(data_dir=stack.data_dir))
    old_gpu = DeviceFacts("cuda", "the GPU (Old Card)", False, True, "compute capability 7.5")
    with factory() as s:  # a GPU worker heartbeats (its process is not the point here)
        leases.heartbeat(s, "fake-gpu", queues=("gpu",), device="cuda:0 (GPU 0)",
                         precision_facts={"cuda": asdict(old_gpu)})
    try:
        page.reload()
        page.locator(field_id("gpu")).wait_for(state="attached")
        page.get_by_label("Device").select_option("gpu")
        page.locator(field_id("model.precision")).select_option("bf16")
        warning = page.get_by_test_id("config-warnings")
        expect(warning).to_contain_text("model.precision is bf16 but the GPU (Old Card) "
                                        "has no native bf16")
        shot(page, "form-02-bf16-warning")
        page.locator(field_id("model.precision")).select_option("auto")
        expect(warning).to_have_count(0)
    finally:
        with factory() as s:
            worker_registry.remove_worker(s, "fake-gpu")
