"""Cancel, resume and delete a training job from its page, against the real worker."""
from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from e2e_ui import shot


@pytest.fixture
def cancel_leftovers(stack):  # noqa: ANN001
    """These tests start 100000-step jobs; if one fails midway, cancel its job so the shared
    worker is free for the next test."""
    yield
    for job in stack.client.get("/api/jobs", params={"status": "running"}).json() + \
            stack.client.get("/api/jobs", params={"status": "queued"}).json():
        stack.client.post(f"/api/jobs/{job['id']}/cancel")


def ready_2d_dataset(client, name: str, n: int = 6) -> int:  # noqa: ANN001
    ds = client.post("/api/datasets", json={"name": name}).json()
    rng = np.random.default_rng(2)
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8), mode="L").save(buf, format="PNG")
        r = client.put(f"/api/datasets/{ds['id']}/files/{name}/i{i}.png", content=buf.getvalue(),
                       headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 201, r.text
    assert client.post(f"/api/datasets/{ds['id']}/commit").status_code == 200
    return ds["id"]


@pytest.mark.timeout(300)
def test_cancel_resume_delete(page, stack, cancel_leftovers):  # noqa: ANN001
    ds = ready_2d_dataset(stack.client, "controls")
    page.goto(f"/jobs/new?dataset={ds}")
    expect(page.get_by_role("button", name="2D tiny")).to_have_attribute("aria-pressed", "true")
    page.get_by_label("Iterations").fill("100000")  # far more than the test waits for
    page.get_by_label("Checkpoint every (steps)").fill("1000")
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    badge = page.locator(".page-head .badge")

    expect(badge).to_have_text("running", timeout=90_000)
    # the bar shows tenths of a percent of 100000 steps: from step 50 on it is above 0
    page.wait_for_function("() => parseInt(document.querySelector('[data-testid=job-step]').innerText) >= 50",
                           timeout=90_000)
    expect(page.get_by_role("progressbar", name="Training progress")).not_to_have_attribute("aria-valuenow", "0")
    page.get_by_role("button", name="Cancel job").click()
    expect(badge).to_have_text("cancelled", timeout=60_000)
    job = stack.client.get(f"/api/jobs/{job_id}").json()
    stopped_at = job["progress"]["step"]
    assert stopped_at > 5 and job["checkpoint_step"] == stopped_at  # a checkpoint written on cancel
    expect(page.get_by_test_id("job-step")).to_have_text(f"{stopped_at} / 100000")
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    shot(page, "controls-01-cancelled")

    page.get_by_role("button", name="Resume job").click()
    expect(badge).to_have_text(re.compile("queued|running"))
    expect(badge).to_have_text("running", timeout=90_000)
    # it continues from the checkpoint: the step never goes back below where it stopped
    page.wait_for_function(f"() => parseInt(document.querySelector('[data-testid=job-step]').innerText) > {stopped_at}",
                           timeout=60_000)
    assert stack.client.get(f"/api/jobs/{job_id}").json()["attempts"] >= 2
    page.get_by_role("button", name="Cancel job").click()
    expect(badge).to_have_text("cancelled", timeout=60_000)

    page.once("dialog", lambda d: d.accept())  # "Delete job N and its files?"
    page.get_by_role("button", name="Delete job").click()
    page.wait_for_url(re.compile(r"/jobs$"))
    expect(page.get_by_role("link", name=f"train #{job_id}", exact=True)).to_have_count(0)
    assert stack.client.get(f"/api/jobs/{job_id}").status_code == 404


@pytest.mark.timeout(300)
def test_live_view_reconnects_after_the_api_restarts(page, stack, cancel_leftovers):  # noqa: ANN001
    ds = ready_2d_dataset(stack.client, "reconnect")
    page.goto(f"/jobs/new?dataset={ds}")
    expect(page.get_by_role("button", name="2D tiny")).to_have_attribute("aria-pressed", "true")
    page.get_by_label("Iterations").fill("100000")
    page.get_by_label("Metrics every (steps)").fill("100000")
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator(".page-head .badge")).to_have_text("running", timeout=90_000)
    live = page.locator(".live-dot")
    expect(live).to_have_attribute("aria-label", "Live")

    page.evaluate("""() => {
        window.__live = [];
        const dot = document.querySelector('.live-dot');
        new MutationObserver(() => window.__live.push(dot.getAttribute('aria-label')))
            .observe(dot, {attributes: true, attributeFilter: ['aria-label']});
    }""")
    stack.restart_api()  # the event stream breaks; the page must find its way back on its own
    expect(live).to_have_attribute("aria-label", "Live", timeout=30_000)
    assert page.evaluate("window.__live")[:1] == ["Offline"], page.evaluate("window.__live")
    # after the reconnect, progress arrives over the stream: several updates within 3 s,
    # where the safety-net poll (every 5 s) would give at most one
    steps = page.evaluate("""async () => {
        const seen = new Set();
        const t0 = Date.now();
        while (Date.now() - t0 < 3000) {
            seen.add(document.querySelector('[data-testid=job-step]').innerText);
            await new Promise(r => setTimeout(r, 50));
        }
        return [...seen];
    }""")
    assert len(steps) >= 3, steps

    stack.client.post(f"/api/jobs/{job_id}/cancel")
    expect(page.locator(".page-head .badge")).to_have_text("cancelled", timeout=60_000)
