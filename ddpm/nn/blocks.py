"""Building blocks of the U-Net, written once for 2D and 3D (``dims`` picks Conv2d or Conv3d).

Speed notes (why the blocks look the way they do):
- The second GroupNorm of a ResBlock has no affine parameters: the time embedding's scale and
  shift already give a per-channel affine, so a learned one would only cost an extra pass.
- Norm, time scale/shift and SiLU are one autograd node (``norm_act.py``): on CPU that node's
  backward is layout-agnostic, so channels-last (oneDNN's fastest convolution layout) costs no
  layout copies around the norms.
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

from .norm_act import group_norm_act


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


class GroupNorm(nn.GroupNorm):
    """GroupNorm that runs in the input's dtype under autocast and fast in any layout on CPU.

    Autocast would upcast its input to fp32 and hand fp32 to the next convolution, which then
    casts back: two extra full passes over the activation. The native kernels accumulate the
    statistics in fp32 for bf16/fp16 input anyway, so running it in the input dtype is safe.
    ``forward_act`` also applies a per-sample scale/shift and SiLU in the same autograd node
    (``norm_act.group_norm_act``), which is what the ResBlocks and the output head use.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return group_norm_act(x, self.num_groups, self.weight, self.bias, self.eps, act=False)

    def forward_act(self, x: torch.Tensor, scale: Optional[torch.Tensor] = None,
                    shift: Optional[torch.Tensor] = None) -> torch.Tensor:
        """silu(norm(x) * (1 + scale) + shift)."""
        return group_norm_act(x, self.num_groups, self.weight, self.bias, self.eps, scale, shift)


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
        # the features in the MLP's dtype: a model cast to bf16 gets bf16, under autocast a no-op
        features = sinusoidal_embedding(t, self.dim).to(self.mlp[0].weight.dtype)
        return F.silu(self.mlp(features))


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
        h = self.conv1(self.norm1.forward_act(x))
        scale, shift = self.emb(emb).chunk(2, dim=1)  # (B, out_ch) each
        h = self.norm2.forward_act(h, scale, shift)
        h = self.conv2(self.dropout(h))
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
