"""Redis SIGKILLed mid-training and restarted 3 s later (bench/faults.py: the same at full size).
tests/backend covers a broker that is never there (health degraded, a 503 job); this is the
real outage: our redis-server killed under a training job and brought back empty."""
from __future__ import annotations

from redis_kill import run_redis_kill


def test_redis_sigkill_mid_training_rides_through(fault_stack):
    report = run_redis_kill(fault_stack, down_s=3.0, iterations=40, freq=10)
    # health degraded and a 503 naming Redis while it is down, one attempt for the running job
    assert report.problems == [], report.details()
    assert report.errors == [], report.details()
    # the job that trained through the outage and the one submitted after it
    assert report.finished == 2, report.details()
