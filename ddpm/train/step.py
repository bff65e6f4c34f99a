"""One optimizer step of the training loop, the same code for one process and for many.

``grad_accumulation`` micro-batches, each loss divided by it before backward (the gradient is
the mean over the micro-batches); DDP averages the gradients over the ranks on the last
micro-batch's backward only. Then gradient-norm clipping, the optimizer, the grad scaler, the
EMA and the LR schedule.

The random inputs of the loss (timesteps, noise, self-conditioning mask) are drawn on the
device for the global micro-batch on every rank, each rank using its slice: the numbers, and
the RNG state a checkpoint saves, are the same whatever the number of processes.

No host sync: the step never reads a tensor back. Whether to skip a step whose loss or gradient
norm is not finite is a device flag: the fused Adam/AdamW kernels take it as ``found_inf`` (the
hook torch's GradScaler uses; a flagged step changes no weight, no moment and no step count),
the EMA update is masked by it, and the loop's counters (``ddpm.train.tally``) add it up. The
trainer reads them back only when it reports. That also keeps the step capturable as a graph.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from . import distributed as dd


@dataclass(frozen=True)
class StepOutcome:
    """One step's numbers, as 0-dim tensors on the training device."""

    loss: torch.Tensor       # mean loss over the global batch (float32)
    grad_norm: torch.Tensor  # gradient norm before clipping (float32)
    nonfinite: torch.Tensor  # bool: counted as a non-finite step (skipped, part of a streak)
    skipped: torch.Tensor    # bool: the weights, optimizer state and EMA were left as they were


def optimizer_step(tr: Any, batches: Any) -> StepOutcome:
    """One step of the trainer ``tr`` (a ``ddpm.train.Trainer`` after its set-up: typed loosely,
    since the trainer imports this), added to its ``tr.tally``."""
    accum, micro = tr.cfg.dataset.grad_accumulation, tr.micro_batch
    lo = tr.dist.rank * micro
    draw = getattr(tr.model, "draw_loss_inputs", None)  # the segmenter draws nothing
    loss_sum = torch.zeros((), device=tr.device)
    for i in range(accum):
        x = next(batches).to(tr.device, non_blocking=True)
        inputs = draw((tr.cfg.dataset.batch_size, *x.shape[1:])) if draw is not None else {}
        inputs = {k: v[lo:lo + micro] for k, v in inputs.items()}
        last = i == accum - 1 or not tr.dist.active
        with nullcontext() if last else tr.loss_module.no_sync():
            with tr.autocast():
                loss = tr.loss_module(x, inputs)
            tr.scaler.scale(loss / accum).backward()
        loss_sum += loss.detach().float() / accum
    loss_sum = dd.mean_over_ranks(loss_sum, tr.dist)
    if tr.fp16:
        tr.scaler.unscale_(tr.optimizer)  # the norm and the clipping see the true gradients
    max_norm = tr.cfg.model.grad_clip if tr.cfg.model.grad_clip is not None else float("inf")
    norm = torch.nn.utils.clip_grad_norm_(tr.params, max_norm).float()
    bad_loss, bad_norm = ~torch.isfinite(loss_sum), ~torch.isfinite(norm)
    # fp16: an overflowing gradient is the scaler's business (it skips the step and lowers the
    # scale), not a non-finite step of the run; every precision skips it all the same
    nonfinite = bad_loss if tr.fp16 else bad_loss | bad_norm
    skipped = bad_loss | bad_norm
    masked_optimizer_step(tr.optimizer, skipped)
    if tr.ema is not None:
        tr.ema.update(tr.model, skip=skipped)
    tr.scaler.update()  # fp16: from the overflow check of unscale_ above; otherwise a no-op
    tr.optimizer.zero_grad(set_to_none=True)
    tr.scheduler.step()
    outcome = StepOutcome(loss_sum, norm, nonfinite, skipped)
    tr.tally.record(outcome.loss, outcome.grad_norm, outcome.nonfinite)
    return outcome


def masked_optimizer_step(optimizer: torch.optim.Optimizer, skip: torch.Tensor) -> None:
    """``optimizer.step()`` unless the bool device tensor ``skip`` is True, decided on the device.

    A fused Adam/AdamW (``_step_supports_amp_scaling``) reads ``found_inf``: where it is 1 the
    kernel returns before touching a weight or a moment and the step count it advanced is taken
    back (torch/optim/adam.py ``_fused_adam``). The step is called directly rather than through
    ``GradScaler.step``, which would replace this flag with its own overflow check alone (the
    gradients are already unscaled, so no ``grad_scale`` is passed). An optimizer without that
    support decides on the host (one read, outside the fused CPU/CUDA path the trainer builds)."""
    if getattr(optimizer, "_step_supports_amp_scaling", False):
        optimizer.found_inf = skip.to(torch.float32)  # type: ignore[attr-defined]
        optimizer.grad_scale = None  # type: ignore[attr-defined]
        try:
            optimizer.step()
        finally:
            del optimizer.found_inf, optimizer.grad_scale  # type: ignore[attr-defined]
    elif not bool(skip):
        optimizer.step()
