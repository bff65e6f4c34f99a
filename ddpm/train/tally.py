"""The training loop's running numbers, kept on the training device.

A step adds its loss and gradient norm to one small float64 vector on the device and never
waits for the host; the loop reads the vector back (one copy) only when it reports: a progress
report, a metric step, a checkpoint, the end. The sums since the previous read move to the host
at each read, so the host keeps the loop's interval means as plain floats.

A non-finite step (loss, or outside fp16 the gradient norm) adds nothing to the sums, counts as
skipped and lengthens the streak of non-finite steps; a finite one ends the streak. The step at
which the streak reaches ``MAX_NONFINITE`` is kept on the device too, so the read that finds it
names the same step the loop would have stopped at had it looked at every step.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

MAX_NONFINITE = 5  # consecutive non-finite steps after which training stops

# slots of the vector
LOSS, GRAD_NORM, COUNT, PROGRESS_LOSS, PROGRESS_COUNT = range(5)  # sums drained at each read
SKIPPED, STREAK, STEP, TRIPPED_AT, LAST_LOSS, LAST_GRAD_NORM = range(5, 11)  # kept
_SLOTS = 11


@dataclass(frozen=True)
class TallyRead:
    """What the device held at a read; the sums cover the steps since the previous read."""

    loss_sum: float       # finite steps' losses
    grad_norm_sum: float  # finite steps' (finite) gradient norms
    count: int            # finite steps
    progress_loss_sum: float
    progress_count: int
    skipped: int          # non-finite steps since the run began (over resumes)
    streak: int           # non-finite steps in a row up to the last step
    step: int             # steps done
    tripped_at: int       # the step at which the streak reached MAX_NONFINITE; 0: it has not
    last_loss: float
    last_grad_norm: float


class StepTally:
    def __init__(self, device: torch.device, step: int = 0, skipped: int = 0, streak: int = 0) -> None:
        # float64 holds every count exactly (to 2**53) and sums the float32 losses as the
        # host's Python floats did
        values = [0.0] * _SLOTS
        values[SKIPPED], values[STREAK], values[STEP] = float(skipped), float(streak), float(step)
        self.values = torch.tensor(values, dtype=torch.float64, device=device)
        self._zeros = torch.zeros((), dtype=torch.float64, device=device)

    def record(self, loss: torch.Tensor, grad_norm: torch.Tensor, nonfinite: torch.Tensor) -> None:
        """Add one step (0-dim device tensors; ``nonfinite`` a bool); device work only."""
        v = self.values
        ok = (~nonfinite).to(torch.float64)
        loss64, norm64 = loss.detach().to(torch.float64), grad_norm.detach().to(torch.float64)
        kept_loss = torch.where(nonfinite, self._zeros, loss64)
        kept_norm = torch.where(nonfinite | ~torch.isfinite(norm64), self._zeros, norm64)
        streak = (v[STREAK] + 1) * (1 - ok)
        step = v[STEP] + 1
        tripped = torch.where((v[TRIPPED_AT] == 0) & (streak >= MAX_NONFINITE), step, v[TRIPPED_AT])
        sums = v[:SKIPPED + 1] + torch.stack([kept_loss, kept_norm, ok, kept_loss, ok, 1 - ok])
        # in place: the vector keeps its storage (what a captured CUDA graph needs)
        v.copy_(torch.cat([sums, torch.stack([streak, step, tripped, loss64, norm64])]))

    def read(self) -> TallyRead:
        """The one host read; zeroes the sums it returns."""
        x = self.values.tolist()
        self.values[:SKIPPED].zero_()
        return TallyRead(loss_sum=x[LOSS], grad_norm_sum=x[GRAD_NORM], count=int(x[COUNT]),
                         progress_loss_sum=x[PROGRESS_LOSS], progress_count=int(x[PROGRESS_COUNT]),
                         skipped=int(x[SKIPPED]), streak=int(x[STREAK]), step=int(x[STEP]),
                         tripped_at=int(x[TRIPPED_AT]), last_loss=x[LAST_LOSS], last_grad_norm=x[LAST_GRAD_NORM])
