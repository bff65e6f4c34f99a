"""GroupNorm + scale/shift + SiLU on the C++ kernels (``csrc/norm_act.cpp``): the autograd node and
the test of which tensors they take. ``ddpm.nn.norm_act.group_norm_act`` decides when to use them.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch.autograd.function import once_differentiable

from .loader import available, ops


def takes(x: torch.Tensor) -> bool:
    """Whether the kernels take x: a channels-last fp32/bf16 CPU map, and they are built."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.bfloat16) or x.dim() not in (4, 5):
        return False
    fmt = torch.channels_last_3d if x.dim() == 5 else torch.channels_last
    return x.is_contiguous(memory_format=fmt) and available()


def forward(x: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor],
            scale: Optional[torch.Tensor], shift: Optional[torch.Tensor], groups: int, eps: float,
            act: bool) -> torch.Tensor:
    """The output alone, for inference (no autograd node, nothing saved)."""
    return ops().group_norm_act_forward(x, weight, bias, scale, shift, groups, eps, act)[0]


class NativeNormAct(torch.autograd.Function):
    """The norm node on the kernels. It saves only x and the (B, groups) statistics; the backward
    recomputes y and z from them, which costs less than reading two saved activations back."""

    @staticmethod
    def forward(ctx, x, weight, bias, scale, shift, groups: int, eps: float, act: bool):  # type: ignore[override]
        out, mean, rstd = ops().group_norm_act_forward(x, weight, bias, scale, shift, groups, eps, act)
        ctx.save_for_backward(x, mean, rstd, weight, bias, scale, shift)
        ctx.meta = (groups, act)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        x, mean, rstd, weight, bias, scale, shift = ctx.saved_tensors
        groups, act = ctx.meta
        needs = ctx.needs_input_grad
        grads = ops().group_norm_act_backward(
            grad, x, weight, bias, scale, shift, mean, rstd, groups, act, needs[0])
        # empty tensors stand for absent parameters
        return (*(g if need else None for g, need in zip(grads, needs[:5])), None, None, None)
