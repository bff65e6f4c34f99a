"""What a job's run folder says, read from outside while the stack runs: its newest checkpoint,
the starts run.json records, the metric steps of metrics.jsonl. The layout is the engine's
(``ddpm.run``); nothing here writes."""
from __future__ import annotations

import json
from pathlib import Path

from ddpm.run.run_dir import RunPaths


def newest_checkpoint_step(run_dir: Path) -> int:
    """Step of the newest checkpoint on disk (0: none yet)."""
    from ddpm.run.checkpoint import latest_checkpoint  # imports torch: only when asked

    found = latest_checkpoint(RunPaths(run_dir).checkpoints)
    return found.step if found is not None else 0


def starts(run_dir: Path) -> list[dict]:
    """run.json ``starts``: one entry (at, step, ...) per start of the engine on this run."""
    return list(RunPaths(run_dir).read_run_json().get("starts") or [])


def metric_steps(run_dir: Path) -> list[int]:
    """The steps of metrics.jsonl in file order (a line cut by a crash does not count)."""
    path = RunPaths(run_dir).metrics
    if not path.is_file():
        return []
    steps = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            steps.append(int(json.loads(line)["step"]))
        except (ValueError, KeyError, TypeError):
            continue
    return steps
