"""Kill storm, compressed: 2 workers, 6 tiny jobs, a worker holding a job SIGKILLed every 2-4 s
(seeded) and restarted at once, 8 kills. bench/faults.py runs it at full size."""
from __future__ import annotations

import pytest

from storm import StormPlan, run_kill_storm

# A kill waits for a victim that has trained a few steps in its attempt: in a compressed storm
# the interval is shorter than a restarted worker's start, so otherwise every kill would land in
# a job's first seconds (test_kill_instants.py covers those) and none mid-training.
# 120 steps a job: on a quiet machine 50-step jobs all finished after 7 kills, leaving none to kill.
PLAN = StormPlan(workers=2, jobs=6, kills=8, kill_every_s=(2.0, 4.0), iterations=120,
                 freq_checkpoint=10, freq_metrics=10, min_steps_to_kill=3, seed=16,
                 victim_wait_s=60, timeout_s=400)


@pytest.mark.timeout(PLAN.timeout_s + 120)  # a loaded machine stretches every restart
def test_kill_storm_every_job_finishes_once_per_worker_without_lost_or_repeated_steps(fault_stack):
    report = run_kill_storm(fault_stack, PLAN)
    assert report.problems == [], report.details()
    assert report.errors == [], report.details()
    assert report.finished == PLAN.jobs, report.details()
    assert report.kills == PLAN.kills, report.details()
    # the kills landed on running jobs (a storm that only hit idle workers would prove nothing)
    assert len(report.redone_steps) >= PLAN.kills - 1, report.details()
    assert max(report.redone_steps) <= PLAN.freq_checkpoint
