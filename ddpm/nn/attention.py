"""Self-attention over all spatial positions of a 2D or 3D feature map.

Both modules take (B, C, *spatial) and return the same shape with a residual added. Tokens are
taken as ``x.flatten(2).transpose(1, 2)``: for a channels-last tensor that is already a
contiguous (B, N, C) view, so the projections are plain matmuls without a layout copy.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import GroupNorm, norm_groups
from .cpu_attention import chunked_attention


class _TokenAttention(nn.Module):
    """Shared parts: pre-norm, fused qkv projection, output projection, residual."""

    def __init__(self, channels: int, num_head_channels: int) -> None:
        super().__init__()
        # the UNet checked that heads divide every attention level (ddpm.config.unet_shape_problems)
        self.heads = channels // num_head_channels
        self.head_dim = num_head_channels
        self.norm = GroupNorm(norm_groups(channels), channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        spatial = x.shape[2:]
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, N, C)
        n = tokens.shape[1]
        # (B, N, 3, heads, d) -> three (B, heads, N, d) strided views, no copy
        q, k, v = self.qkv(tokens).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = self._attend(q, k, v)  # (B, heads, N, d)
        out = self.proj(out.transpose(1, 2).reshape(b, n, c))  # (B, N, C)
        return x + out.transpose(1, 2).view(b, c, *spatial).to(x.dtype)


class Attention(_TokenAttention):
    """Full multi-head softmax attention through scaled_dot_product_attention (flash / memory
    efficient kernels where the device has them); on CPU in bf16/fp16 through
    ``cpu_attention.chunked_attention``, which is faster there at every map size (see that
    module). ``CPU_CHUNKED = False`` sends those cases to SDPA too."""

    CPU_CHUNKED = True

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self.CPU_CHUNKED and q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16):
            return chunked_attention(q, k, v)
        return F.scaled_dot_product_attention(q, k, v)


class LinearAttention(_TokenAttention):
    """Linear attention (softmax over features for q, over positions for k): cost O(N d^2)
    instead of O(N^2 d), for levels where full attention would be too expensive."""

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # softmax in fp32: exp over thousands of positions is fragile in bf16
        q = q.float().softmax(dim=-1) * (self.head_dim**-0.5)
        k = k.float().softmax(dim=-2)
        context = k.transpose(-1, -2) @ v.float()  # (B, heads, d, d)
        return (q @ context).to(v.dtype)
