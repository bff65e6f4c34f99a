"""The fault scenarios of issue 16 at full size, on the real stack (our Redis, `python -m backend`,
`python -m worker` processes), with the same code as the tests in tests/faults/:

- kill storm: 2 workers, 6 training jobs, a worker holding a job SIGKILLed every 20-30 s
  (seeded), restarted at once under its name, 8 kills;
- Redis SIGKILLed mid-training and started again (empty) after --redis-down-s;
- SIGKILL at the instants of a job's first seconds (claim, child start, data, kernels, after a
  metric step before the first checkpoint, mid-step), then every --spread-every-s seconds after
  the claim up to --spread-last-s, each on one job's successive attempts.

Prints one table row per scenario (jobs finished, kills, redone steps, the longest time a dead
worker's job still showed ``running``, errors) and each scenario's notes and problems; exit 1
when a scenario broke an invariant. Numbers go to bench/RESULTS.md ("Faults").

    PYTHONPATH=. nice -n 10 .venv/bin/python bench/faults.py [--only storm,redis,instants]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "faults"))  # the scenarios the tests run, compressed there

from fault_stack import FaultStack  # noqa: E402
from kill_instants import FIRST_SECONDS, run_kill_instants, spread_instants  # noqa: E402
from redis_kill import run_redis_kill  # noqa: E402
from fault_report import ScenarioReport, markdown_table  # noqa: E402
from storm import StormPlan, run_kill_storm  # noqa: E402

SCENARIOS = ("storm", "redis", "instants")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(SCENARIOS), help=f"comma list of {', '.join(SCENARIOS)}")
    p.add_argument("--heartbeat-timeout-s", type=float, default=5.0,
                   help="WORKER_HEARTBEAT_TIMEOUT_S: how long a dead worker's job stays running (default 5)")
    p.add_argument("--kills", type=int, default=8)
    p.add_argument("--kill-every-s", type=float, nargs=2, default=(20.0, 30.0))
    p.add_argument("--iterations", type=int, default=600, help="steps of each storm job")
    p.add_argument("--freq-checkpoint", type=int, default=50)
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--redis-down-s", type=float, default=10.0)
    p.add_argument("--spread-every-s", type=float, default=1.0)
    p.add_argument("--spread-last-s", type=float, default=5.0)
    args = p.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SCENARIOS))
    if unknown:
        p.error(f"--only: unknown scenario(s) {', '.join(unknown)} (choose from {', '.join(SCENARIOS)})")

    def say(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    say(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; heartbeat timeout "
        f"{args.heartbeat_timeout_s:g}s")
    reports: list[ScenarioReport] = []
    t0 = time.monotonic()
    stack = FaultStack(Path(tempfile.mkdtemp(prefix="bench-faults-")), heartbeat_timeout_s=args.heartbeat_timeout_s)
    try:
        if "storm" in only:
            plan = StormPlan(workers=2, jobs=6, kills=args.kills, kill_every_s=tuple(args.kill_every_s),
                             iterations=args.iterations, freq_checkpoint=args.freq_checkpoint,
                             freq_metrics=args.freq_checkpoint, seed=args.seed)
            say(f"kill storm: {plan}")
            reports.append(run_kill_storm(stack, plan, say=say))
        if "redis" in only:
            say(f"Redis SIGKILL, down {args.redis_down_s:g}s")
            reports.append(run_redis_kill(stack, down_s=args.redis_down_s, iterations=300, freq=50, say=say))
        if "instants" in only:
            say("SIGKILL at the instants of a job's first seconds")
            reports.append(run_kill_instants(stack, FIRST_SECONDS, iterations=40, say=say,
                                             name="kill at each instant of the first seconds"))
            spread = spread_instants(args.spread_last_s, args.spread_every_s)
            reports.append(run_kill_instants(stack, spread, iterations=40, say=say,
                                             name=f"kill 0-{args.spread_last_s:g} s after the claim"))
    finally:
        stack.stop()
    print()
    print(markdown_table(reports))
    print()
    for r in reports:
        print(r.details())
    say(f"done in {time.monotonic() - t0:.0f}s; load average {os.getloadavg()[0]:.1f}")
    return 1 if any(r.problems or r.errors for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
