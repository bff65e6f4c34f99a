"""Building blocks of the U-Net, written once for 2D and 3D (``dims`` picks Conv2d or Conv3d).

Speed notes (why the blocks look the way they do):
- The second GroupNorm of a ResBlock has no affine parameters: the time embedding's scale and
  shift already give a per-channel affine, so a learned one would only cost an extra pass.
- Scale and shift are applied with one ``addcmul`` instead of a multiply and an add.
- Downsampling is a kernel-2, stride-2 convolution: the same map as a pixel-unshuffle followed by
  a 1x1 convolution, without materialising the rearranged tensor.
- Nothing here calls ``.contiguous()``; every op keeps the memory format it is given, so a model
  put in channels-last stays channels-last end to end.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


def conv_nd(dims: int, *args, **kwargs) -> nn.Module:
    """Conv2d for dims=2, Conv3d for dims=3."""
    if dims == 2:
        return nn.Conv2d(*args, **kwargs)
    if dims == 3:
        return nn.Conv3d(*args, **kwargs)
    raise ValueError(f"dims must be 2 or 3, got {dims!r}")


def norm_groups(channels: int, max_groups: int = 32) -> int:
    """The largest group count <= max_groups that divides channels (32 for the usual widths)."""
    for g in range(min(max_groups, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1


class _GroupNormCPU(torch.autograd.Function):
    """Native GroupNorm whose backward always runs in the contiguous layout.

    On CPU the native backward is ~100x slower when the input or the incoming gradient is
    channels-last than when both are contiguous (torch 2.13, 2 cores: ~30-150 ms against ~0.5 ms
    for a (2, 32, 32^3) activation). The gradient can arrive channels-last even in a contiguous
    model (oneDNN's bf16 convolution backward returns it so); a layout copy costs far less.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, groups: int, eps: float):  # type: ignore[override]
        n, c = x.shape[:2]
        hxw = x.numel() // max(n * c, 1)
        y, mean, rstd = torch.ops.aten.native_group_norm(x, weight, bias, n, c, hxw, groups, eps)
        ctx.save_for_backward(x, weight, mean, rstd)
        ctx.groups, ctx.has_bias = groups, bias is not None
        ctx.x_channels_last = _is_channels_last(x)
        return y

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, weight, mean, rstd = ctx.saved_tensors
        n, c = x.shape[:2]
        hxw = x.numel() // max(n * c, 1)
        need_w = weight is not None and ctx.needs_input_grad[1]
        need_b = ctx.has_bias and ctx.needs_input_grad[2]
        dx, dw, db = torch.ops.aten.native_group_norm_backward(
            grad.contiguous(), x.contiguous(), mean, rstd, weight, n, c, hxw, ctx.groups,
            [ctx.needs_input_grad[0], need_w, need_b])
        if dx is not None and ctx.x_channels_last:
            dx = dx.contiguous(memory_format=torch.channels_last_3d if x.dim() == 5 else torch.channels_last)
        return dx, dw if need_w else None, db if need_b else None, None, None


def _is_channels_last(x: torch.Tensor) -> bool:
    if x.dim() == 5:
        return x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous()
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


class GroupNorm(nn.GroupNorm):
    """GroupNorm that runs in the input's dtype under autocast, and fast in channels-last on CPU.

    Autocast would upcast its input to fp32 and hand fp32 to the next convolution, which then
    casts back: two extra full passes over the activation. The native kernels accumulate the
    statistics in fp32 for bf16/fp16 input anyway, so running it in the input dtype is safe.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.weight, self.bias
        if x.dtype != torch.float32 and x.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(x.device.type):
            w = w.to(x.dtype) if w is not None else None
            b = b.to(x.dtype) if b is not None else None
            with torch.autocast(x.device.type, enabled=False):
                return self._norm(x, w, b)
        return self._norm(x, w, b)

    def _norm(self, x: torch.Tensor, w: Optional[torch.Tensor], b: Optional[torch.Tensor]) -> torch.Tensor:
        if x.device.type == "cpu" and torch.is_grad_enabled() and x.requires_grad:
            return _GroupNormCPU.apply(x, w, b, self.num_groups, self.eps)
        return F.group_norm(x, self.num_groups, w, b, self.eps)


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) timesteps (int or float) -> (B, dim) sin/cos features, as in the Transformer."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half
    )
    args = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class TimeEmbedding(nn.Module):
    """Sinusoidal features -> MLP. Returns SiLU(embedding): every ResBlock starts with that
    activation, so it is applied once here instead of once per block."""

    def __init__(self, dim: int, emb_dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if t.dim() == 0:
            t = t[None]
        return F.silu(self.mlp(sinusoidal_embedding(t, self.dim)))


class ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv, then norm with time scale-shift, SiLU, dropout, Conv; plus skip."""

    def __init__(self, dims: int, in_ch: int, out_ch: int, emb_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dims = dims
        self.out_ch = out_ch
        self.norm1 = GroupNorm(norm_groups(in_ch), in_ch)
        self.conv1 = conv_nd(dims, in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = GroupNorm(norm_groups(out_ch), out_ch, affine=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv_nd(dims, out_ch, out_ch, 3, padding=1)
        self.skip = conv_nd(dims, in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        ss = self.emb(emb).view(emb.shape[0], 2 * self.out_ch, *([1] * self.dims))
        scale, shift = ss.chunk(2, dim=1)
        h = self.norm2(h)
        # h * (1 + scale) + shift in one pass; dtypes agree under autocast (emb Linear is bf16 too)
        h = torch.addcmul(shift.to(h.dtype), h, (scale + 1).to(h.dtype))
        h = self.conv2(self.dropout(F.silu(h)))
        return h + self.skip(x)


class Downsample(nn.Module):
    """Halves every spatial axis (H, W; or D, H, W) with a kernel-2 stride-2 convolution."""

    def __init__(self, dims: int, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = conv_nd(dims, in_ch, out_ch, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Doubles every spatial axis: nearest-neighbour upsampling then a 3x3(x3) convolution."""

    def __init__(self, dims: int, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = conv_nd(dims, in_ch, out_ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fmt = torch.channels_last_3d if x.dim() == 5 else torch.channels_last
        keep_cl = x.is_contiguous(memory_format=fmt) and not x.is_contiguous()
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if keep_cl and not x.is_contiguous(memory_format=fmt):
            x = x.contiguous(memory_format=fmt)  # interpolate may drop channels-last in 3D
        return self.conv(x)
