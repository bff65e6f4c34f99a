"""One optimizer step of the training loop, the same code for one process and for many.

``grad_accumulation`` micro-batches, each loss divided by it before backward (the gradient is
the mean over the micro-batches); DDP averages the gradients over the ranks on the last
micro-batch's backward only. Then gradient-norm clipping, the optimizer, the grad scaler, the
EMA and the LR schedule. A step whose loss or gradient norm is not finite leaves the weights
untouched (the trainer counts it as skipped).

The random inputs of the loss (timesteps, noise, self-conditioning mask) are drawn for the
global micro-batch on every rank, each rank using its slice: the numbers, and the RNG state a
checkpoint saves, are the same whatever the number of processes. The step reads the host once
(loss and grad norm together), after the gradients are averaged.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any

import torch

from . import distributed as dd


def optimizer_step(tr: Any, batches: Any) -> tuple[float, float, bool]:
    """(mean loss over the global batch, grad norm, finite) of one step of the trainer ``tr``
    (a ``ddpm.train.Trainer`` after its set-up: typed loosely, since the trainer imports this)."""
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
        tr.scaler.unscale_(tr.optimizer)
    max_norm = tr.cfg.model.grad_clip if tr.cfg.model.grad_clip is not None else float("inf")
    norm = torch.nn.utils.clip_grad_norm_(tr.params, max_norm)
    total, grad_norm = torch.stack([loss_sum, norm.float()]).tolist()
    # fp16: an overflowing gradient is the scaler's business (it skips and lowers the scale)
    finite = math.isfinite(total) and (tr.fp16 or math.isfinite(grad_norm))
    if finite:
        tr.scaler.step(tr.optimizer)
        if tr.ema is not None:
            tr.ema.update(tr.model)
    tr.scaler.update()
    tr.optimizer.zero_grad(set_to_none=True)
    tr.scheduler.step()
    return total, grad_norm, finite
