"""A training job's page while it runs and after a reload (issue 13 items 3, 4, 12): the phase it
is in, the training loss drawn live (one point per progress report, not per metric step) beside
the held-out loss, the same curve after a reload, and the precision it runs with and why."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from e2e_ui import shot
from test_job_controls import ready_2d_dataset

CONFIG = {
    "gpu": -1, "is_3d": False, "seed": 0,
    "model": {"unet": {"dim": 8, "channel_mults": [1, 2], "res_blocks": 1, "attn_res": [], "num_head_channels": 8},
              "beta_schedule": {"train": {"n_timestep": 100}}, "iterations": 400, "freq_metrics": 200,
              "freq_checkpoint": 200, "metric_samples": 1, "metric_steps": 2, "metric_sampler": "ddim"},
    "dataset": {"name": "image2d", "image_size": 16, "batch_size": 2, "num_workers": 0, "pin_memory": False,
                "val_fraction": 0.25},
}


def _chart_points(page) -> int:  # noqa: ANN001
    return int(page.get_by_test_id("loss-chart").get_attribute("data-points") or 0)


@pytest.mark.timeout(300)
def test_phase_live_loss_and_precision_on_the_job_page(page, stack):  # noqa: ANN001
    ds = ready_2d_dataset(stack.client, "live")
    r = stack.client.post("/api/jobs", json={"kind": "train", "dataset_id": ds, "config": CONFIG, "device": "cpu"})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    page.goto(f"/jobs/{job_id}")
    expect(page.get_by_test_id("job-phase")).to_contain_text("training", timeout=90_000)
    precision = page.get_by_test_id("job-precision")
    expect(precision).to_contain_text("precision: ")
    expect(precision).to_contain_text("auto: the CPU")
    # before the first metric step (200) the chart already has points from progress reports
    page.wait_for_function("() => +document.querySelector('[data-testid=loss-chart]').dataset.points >= 3",
                           timeout=60_000)
    assert stack.client.get(f"/api/jobs/{job_id}").json()["progress"]["step"] < 400
    shot(page, "job-live-01-running")
    expect(page.locator(".page-head .badge")).to_have_text("succeeded", timeout=120_000)
    expect(page.get_by_test_id("job-phase")).to_have_count(0)  # finished: no phase
    live_points = _chart_points(page)
    curve = stack.client.get(f"/api/jobs/{job_id}/live").json()["loss"]
    assert live_points >= len(curve) > 2  # every stored point (metric steps may add a step of their own)

    page.reload()
    expect(page.get_by_test_id("job-precision")).to_contain_text("precision: ")
    page.wait_for_function(f"() => +document.querySelector('[data-testid=loss-chart]').dataset.points >= {len(curve)}",
                           timeout=30_000)
    # the live curve and the metric rows load separately: wait for both series, not for one read
    legend = page.locator(".chart .u-legend")
    expect(legend).to_contain_text("train loss")
    expect(legend).to_contain_text("held-out loss", timeout=30_000)
    shot(page, "job-live-02-reloaded")
