"""The callback interface between the training loop and whoever watches it (CLI, worker).

Every method has a no-op default, so a watcher overrides only what it needs. The loop calls
them from the training thread; a callback that raises stops training with that exception (a
watcher that must never interrupt training should catch its own errors).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

from ddpm.run.sample_files import SampleFile


@dataclass(frozen=True)
class ProgressInfo:
    """A progress report: sent at most about once a second, and at every metric step."""

    step: int              # optimizer steps done
    total: int             # cfg.model.iterations
    loss: float            # mean training loss over the steps since the previous report
    lr: float              # learning rate of the last step
    grad_norm: float       # gradient norm (before clipping) of the last step
    it_s: float            # optimizer steps per second (recent window)
    samples_s: float       # training samples per second (it_s * batch_size * grad_accumulation)
    eta_s: float           # seconds left for the remaining steps at it_s
    elapsed_s: float       # seconds of training in this process

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TrainCallbacks:
    """Override what you need. ``should_stop`` is asked before every step: returning True makes
    the loop write a checkpoint and return ``TrainResult(status="stopped")``."""

    def on_run_info(self, info: dict[str, Any]) -> None:
        """Once per start, just before ``on_start``: facts of this start for a job page, the
        same dict the run's run.json appends to ``starts`` (at, step, device, precision: what
        runs, fp32/bf16/fp16, and precision_reason: why, e.g. "auto: the CPU (...) has no native
        bf16 (...)")."""

    def on_phase(self, phase: str, done: Optional[int] = None, total: Optional[int] = None) -> None:
        """What the run is doing before and between steps ("preparing data", "building model",
        "loading kernels", "training", "evaluating"), with ``done`` of ``total`` items where the
        phase counts them (files). Called when a phase begins and as its count moves."""

    def on_start(self, step: int, total: int, resumed_from: Optional[Path]) -> None:
        """Before the first step of this process; ``resumed_from`` is the checkpoint or None."""

    def on_progress(self, info: ProgressInfo) -> None:
        """Live progress (throttled)."""

    def on_metrics(self, step: int, metrics: dict[str, Any]) -> None:
        """One metric step: the same dict that goes to metrics.jsonl."""

    def on_samples(self, step: int, files: list[SampleFile]) -> None:
        """Preview samples written at a metric step."""

    def on_checkpoint(self, step: int, path: Path) -> None:
        """A checkpoint was written (atomically) at ``path``."""

    def should_stop(self) -> bool:
        """Cooperative cancel, asked before every step."""
        return False


class ProgressThrottle:
    """Decides when a progress report is due (first step, last step, forced, or >= interval_s)."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._last = -float("inf")

    def due(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self._last >= self.interval_s:
            self._last = now
            return True
        return False
