"""The job's GPUs in a real browser: the header lists each live worker's count, the New-job form
offers the field with what the workers hold, a count no live worker can hold comes back as the
server's 422 beside the field, and a job page shows its world size."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from test_ui_misc import ready_3d_dataset


def test_the_gpus_field_against_the_live_workers(page, stack):  # noqa: ANN001
    ds = ready_3d_dataset(stack.client, "gpus")
    page.goto(f"/jobs/new?dataset={ds}")
    page.get_by_role("group", name="Preset").get_by_role("button").first.wait_for()
    # the stack's one worker is a CPU worker of one process (WORKER_NPROC unset)
    expect(page.get_by_test_id("worker-gpus")).to_have_text("(1 process)")
    expect(page.get_by_test_id("worker-capacity")).to_contain_text("e2e: 1 process")
    gpus = page.get_by_label("GPUs", exact=True)
    expect(gpus).to_have_value("1")
    gpus.fill("2")
    page.get_by_role("button", name="Start training").click()
    expect(page.locator(".field-error", has_text="gpus 2 but the largest live worker on queue cpu has 1")).to_be_visible()
    assert page.url.endswith(f"/jobs/new?dataset={ds}")  # nothing started

    gpus.fill("1")
    page.get_by_role("button", name="Start training").click()
    expect(page).to_have_url(re.compile(r"/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    expect(page.get_by_test_id("job-world-size")).to_have_text("1")
    stack.client.post(f"/api/jobs/{job_id}/cancel")  # the rest of the session's tests need the worker
