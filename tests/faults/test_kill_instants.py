"""A job's worker SIGKILLed at each instant of the job's first seconds (right after the claim,
while the child starts, while it prepares data, while the kernels load, mid-step), restarted at
once each time, and once between a metric step and the first checkpoint: the job still ends
succeeded, its metric steps without gaps or duplicates (issue 16 item 1)."""
from __future__ import annotations

from kill_instants import FIRST_SECONDS, run_kill_instants


def test_sigkill_at_any_instant_of_the_first_seconds_ends_in_a_finished_job(fault_stack):
    # 80 steps: the mid-step kill waits until the poller sees the attempt two steps in, and progress
    # reaches the API at most every half second; a fast 2-core machine trains 20 steps in under one,
    # so the job would finish before the kill lands
    report = run_kill_instants(fault_stack, FIRST_SECONDS, iterations=80, freq_metrics=5, freq_checkpoint=10)
    assert report.problems == [], report.details()
    assert report.errors == [], report.details()
    assert report.kills == len(FIRST_SECONDS) and report.finished == 1, report.details()
