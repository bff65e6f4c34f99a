"""Learning-rate schedule: linear warm-up, then constant or cosine decay to zero.

The factor is a pure function of the optimizer step, so a resumed run gets the same rates.
"""
from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR


def lr_factor(step: int, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """Multiplier of the base lr for the update made at 0-based ``step``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"model.lr_schedule: {schedule!r} is not allowed; allowed values: constant, cosine")


def make_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                   schedule: str) -> LambdaLR:
    lr_factor(0, warmup_steps, total_steps, schedule)  # validate the name now, not at step 1
    return LambdaLR(optimizer, lambda s: lr_factor(s, warmup_steps, total_steps, schedule))
