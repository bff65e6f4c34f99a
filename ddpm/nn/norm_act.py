"""GroupNorm, per-sample scale/shift and SiLU as one autograd node for CPU training (and the
same math in place for CPU inference). Channels-last fp32/bf16 maps go to the C++ kernels of
``kernels/csrc/norm_act.cpp`` when they are built (``kernels.norm_act``); the PyTorch-op node below takes
everything else (contiguous layout, fp64, fp16, or no compiler).

Why: on CPU every elementwise pass over a 3D activation is memory-bound, and PyTorch's native
GroupNorm backward is many times slower on channels-last tensors than on contiguous ones, so a
channels-last model used to pay two layout copies per norm. Channels-last is where oneDNN's
convolutions are fastest, so this node makes that layout cheap (numbers: bench/RESULTS.md
"engine"): its backward works in whatever layout it is given, with per-channel sums and two
fused multiply-adds, and it saves two activations where the unfused chain saved three.

Math, per sample b and channel c in group g (N positions, Cg channels per group):
    y = (x - mean_g) * rstd_g                      (native_group_norm, no affine)
    z = y * A + B,  A = gamma * (1 + scale),  B = beta * (1 + scale) + shift
    out = silu(z)                                  (or z when act is off)
Backward from dz = silu'(z) * d_out:
    S1 = sum_n dz,  S2 = sum_n dz * y               (per b, c)
    dA = S2, dB = S1  ->  d_gamma, d_beta, d_scale, d_shift
    dx = rstd * (dz * A - mean_g(A S1) - y * mean_g(A S2))
The sums use y (well conditioned, mean 0 and unit variance) rather than x, so no cancellation.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch.autograd.function import once_differentiable
import torch.nn.functional as F

from .kernels import norm_act as kernel


def _channel_view(t: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """(B, C, *S) -> (B, N, C) for channels-last memory, (B, C, N) for contiguous; a view in both."""
    b, c = t.shape[:2]
    if channels_last:
        return t.permute(0, *range(2, t.dim()), 1).reshape(b, -1, c)
    return t.reshape(b, c, -1)


def _is_channels_last(t: torch.Tensor) -> bool:
    fmt = torch.channels_last_3d if t.dim() == 5 else torch.channels_last
    return t.dim() in (4, 5) and not t.is_contiguous() and t.is_contiguous(memory_format=fmt)


def _channel_sums(dz: torch.Tensor, y: torch.Tensor, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum_n dz, sum_n dz * y) per (b, c), in fp32.

    For big maps with few channels the second is the diagonal of one batched matmul
    (B, C, N) @ (B, N, C): C times the FLOPs of the dot products, but one read of each tensor
    at GEMM speed and no full-size temporary. Elsewhere a product and a sum is faster.
    """
    dv, yv = _channel_view(dz, channels_last), _channel_view(y, channels_last)
    dim = 1 if channels_last else 2
    c = dz.shape[1]
    s1 = dv.sum(dim)
    if c <= 64 and dz.numel() >= 1 << 22:
        s2 = torch.bmm(dv.transpose(1, 2), yv) if channels_last else torch.bmm(dv, yv.transpose(1, 2))
        s2 = s2.diagonal(dim1=1, dim2=2)
    else:
        s2 = (dv * yv).sum(dim)
    acc = _acc_dtype(dz.dtype)
    return s1.to(acc), s2.to(acc)


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 for the per-channel math of bf16/fp16/fp32 tensors; fp64 stays fp64 (gradcheck)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _per_channel(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B, C) -> (B, C, 1, ...) broadcastable against ``like``, in its dtype."""
    return v.to(like.dtype).view(*v.shape, *([1] * (like.dim() - 2)))


def _affine_parts(weight, bias, scale, b: int, c: int, like: torch.Tensor):
    """(1 + scale, gamma, beta) as (B, C), (C,), (C,) tensors in the accumulation dtype."""
    acc, dev = _acc_dtype(like.dtype), like.device
    one_s = torch.ones(b, c, device=dev, dtype=acc) if scale is None else 1 + scale.to(acc).reshape(b, c)
    gamma = torch.ones(c, device=dev, dtype=acc) if weight is None else weight.to(acc)
    beta = torch.zeros(c, device=dev, dtype=acc) if bias is None else bias.to(acc)
    return one_s, gamma, beta


def _normalise(x: torch.Tensor, groups: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(x - mean) * rstd per group, in x's layout, and rstd (B, groups) in fp32.

    PyTorch's channels-last group norm is slow on small maps (an order of magnitude behind the
    contiguous one), so maps of fewer than 1024 positions go through a contiguous copy, which
    costs microseconds at that size.
    """
    b, c = x.shape[:2]
    n = x.numel() // max(b * c, 1)
    if n < 1024 and _is_channels_last(x):
        fmt = torch.channels_last_3d if x.dim() == 5 else torch.channels_last
        y, _, rstd = torch.ops.aten.native_group_norm(x.contiguous(), None, None, b, c, n, groups, eps)
        return y.contiguous(memory_format=fmt), rstd
    y, _, rstd = torch.ops.aten.native_group_norm(x, None, None, b, c, n, groups, eps)
    return y, rstd


class _NormScaleShiftAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, scale, shift, groups: int, eps: float, act: bool):  # type: ignore[override]
        b, c = x.shape[:2]
        n = x.numel() // max(b * c, 1)
        y, rstd = _normalise(x, groups, eps)
        a, bb = _scale_shift(weight, bias, scale, shift, x)
        z = torch.addcmul(_per_channel(bb, y), y, _per_channel(a, y))
        out = F.silu(z) if act else z
        ctx.save_for_backward(y, z if act else None, a, rstd, weight, bias, scale)
        ctx.meta = (groups, act, n, _is_channels_last(y), shift.dtype if shift is not None else None)
        return out

    @staticmethod
    @once_differentiable  # a second derivative would need autograd through this backward
    def backward(ctx, grad):  # type: ignore[override]
        y, z, a, rstd, weight, bias, scale = ctx.saved_tensors
        groups, act, n, cl, shift_dtype = ctx.meta
        b, c = y.shape[:2]
        dz = torch.ops.aten.silu_backward(grad, z) if act else grad
        s1, s2 = _channel_sums(dz, y, cl)  # (B, C) fp32

        need_x, need_w, need_b, need_scale, need_shift = ctx.needs_input_grad[:5]
        dx = dw = db = dscale = dshift = None
        if need_x:
            cg = c // groups
            m1 = (a * s1).view(b, groups, cg).sum(-1) / (n * cg)  # mean_g(dz * A)
            m2 = (a * s2).view(b, groups, cg).sum(-1) / (n * cg)  # mean_g(dz * A * y)
            r = rstd.to(a.dtype).view(b, groups)
            p = (r[..., None] * a.view(b, groups, cg)).reshape(b, c)
            q = (-(r * m2))[..., None].expand(b, groups, cg).reshape(b, c)
            k = (-(r * m1))[..., None].expand(b, groups, cg).reshape(b, c)
            dx = torch.addcmul(_per_channel(k, y), y, _per_channel(q, y))
            dx.addcmul_(dz, _per_channel(p, y))
        one_s, gamma, beta = _affine_parts(weight, bias, scale, b, c, a)
        if need_w and weight is not None:
            dw = (s2 * one_s).sum(0).to(weight.dtype)
        if need_b and bias is not None:
            db = (s1 * one_s).sum(0).to(bias.dtype)
        if need_scale and scale is not None:
            dscale = (s2 * gamma + s1 * beta).to(scale.dtype).view(scale.shape)
        if need_shift and shift_dtype is not None:
            dshift = s1.to(shift_dtype)
        return dx, dw, db, dscale, dshift, None, None, None


def group_norm_act(
    x: torch.Tensor,
    groups: int,
    weight: Optional[torch.Tensor] = None,
    bias: Optional[torch.Tensor] = None,
    eps: float = 1e-5,
    scale: Optional[torch.Tensor] = None,
    shift: Optional[torch.Tensor] = None,
    act: bool = True,
) -> torch.Tensor:
    """silu(group_norm(x) * (1 + scale) + shift), scale/shift of shape (B, C[, 1...]) or None.

    Runs in x's dtype (the statistics accumulate in fp32 or wider). On CPU: the C++ kernels for
    channels-last fp32/bf16 maps, else the fused node above for training and the same math in
    place for inference; CUDA runs the plain ops, whose kernels are already fast there.
    """
    if scale is not None:
        scale = scale.reshape(x.shape[0], x.shape[1])
    if shift is not None:
        shift = shift.reshape(x.shape[0], x.shape[1])
    if x.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(x.device.type):  # stay in x's dtype
        with torch.autocast(x.device.type, enabled=False):
            return _group_norm_act(x, groups, weight, bias, eps, scale, shift, act)
    return _group_norm_act(x, groups, weight, bias, eps, scale, shift, act)


def _scale_shift(weight, bias, scale, shift, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A and B of z = y * A + B as (B, C) tensors in the accumulation dtype."""
    b, c = x.shape[:2]
    one_s, gamma, beta = _affine_parts(weight, bias, scale, b, c, x)
    a, bb = gamma[None] * one_s, beta[None] * one_s
    if shift is not None:
        bb = bb + shift.to(a.dtype)
    return a, bb


def _group_norm_act(x, groups, weight, bias, eps, scale, shift, act) -> torch.Tensor:
    training = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, weight, bias, scale, shift))
    if kernel.takes(x):
        if training:
            return kernel.NativeNormAct.apply(x, weight, bias, scale, shift, groups, eps, act)
        return kernel.forward(x, weight, bias, scale, shift, groups, eps, act)
    if x.device.type == "cpu":
        if training:
            return _NormScaleShiftAct.apply(x, weight, bias, scale, shift, groups, eps, act)
        y, _ = _normalise(x, groups, eps)  # a fresh tensor: the rest runs in place
        a, bb = _scale_shift(weight, bias, scale, shift, x)
        y.mul_(_per_channel(a, y)).add_(_per_channel(bb, y))
        return F.silu(y, inplace=True) if act else y
    w = weight.to(x.dtype) if weight is not None else None
    bias_ = bias.to(x.dtype) if bias is not None else None
    h = F.group_norm(x, groups, w, bias_, eps)
    one_s = 1 + _per_channel(scale, h) if scale is not None else None
    sh = _per_channel(shift, h) if shift is not None else None
    if training:  # autograd needs the intermediate tensors: out-of-place
        if one_s is not None:
            h = torch.addcmul(sh, h, one_s) if sh is not None else h * one_s
        elif sh is not None:
            h = h + sh
        return F.silu(h) if act else h
    if one_s is not None:
        h.mul_(one_s)
    if sh is not None:
        h.add_(sh)
    return F.silu(h, inplace=True) if act else h
