"""The denoising U-Net, one class for 2D images (B,C,H,W) and 3D volumes (B,C,D,H,W).

Layout per level i (feature side = image_size / 2**i, channels = dim * channel_mults[i]):
  down: res_blocks x [ResBlock (+ attention)], each output kept as a skip; then a stride-2
        downsampling over every spatial axis (not after the last level);
  middle (at the lowest level): ResBlock, attention, ResBlock;
  up:   res_blocks x [concat skip, ResBlock (+ attention)]; then nearest x2 + conv (not at the top).
Full attention runs at the levels whose side is listed in ``attn_res``; with ``linear_attn`` the
other levels get linear attention. ``checkpointing`` recomputes each block's activations in the
backward pass instead of keeping them (less memory, about one extra forward of compute).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ddpm.config import attention_sides, feature_sides, unet_shape_problems

from .attention import Attention, LinearAttention
from .blocks import Downsample, GroupNorm, ResBlock, TimeEmbedding, Upsample, conv_nd, norm_groups


class _Step(nn.Module):
    """One ResBlock and its optional attention, run as one unit (one checkpoint segment)."""

    def __init__(self, res: ResBlock, attn: Optional[nn.Module]) -> None:
        super().__init__()
        self.res = res
        self.attn = attn

    def forward(self, x: torch.Tensor, emb: torch.Tensor, skip: Optional[torch.Tensor] = None) -> torch.Tensor:
        if skip is not None:  # concatenated inside the step, so a checkpoint never stores the concat
            x = torch.cat([x, skip], dim=1)
        x = self.res(x, emb)
        return self.attn(x) if self.attn is not None else x


class MiddleBlock(nn.Module):
    """ResBlock, attention, ResBlock at the lowest resolution."""

    def __init__(self, dims: int, ch: int, emb_dim: int, dropout: float, attn: Optional[nn.Module]) -> None:
        super().__init__()
        self.first = _Step(ResBlock(dims, ch, ch, emb_dim, dropout), attn)
        self.second = _Step(ResBlock(dims, ch, ch, emb_dim, dropout), None)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, ckpt: bool = False) -> torch.Tensor:
        for step in (self.first, self.second):
            x = checkpoint(step, x, emb, use_reentrant=False) if ckpt else step(x, emb)
        return x


class UNet(nn.Module):
    def __init__(
        self,
        dims: int = 2,
        in_channels: int = 1,
        out_channels: Optional[int] = None,
        image_size: int = 32,
        dim: int = 32,
        channel_mults: Sequence[int] = (1, 2, 4),
        res_blocks: int = 2,
        attn_res: Union[None, int, Sequence[int]] = None,
        num_head_channels: int = 32,
        dropout: float = 0.0,
        self_condition: bool = False,
        linear_attn: bool = False,
        checkpointing: bool = False,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims!r}")
        if not channel_mults or any(int(m) < 1 for m in channel_mults):
            raise ValueError(f"channel_mults must be a non-empty list of positive ints, got {channel_mults!r}")
        if res_blocks < 1:
            raise ValueError(f"res_blocks must be >= 1, got {res_blocks!r}")
        levels = len(channel_mults)
        attn_list = None if attn_res is None else [attn_res] if isinstance(attn_res, int) else list(attn_res)
        problems = unet_shape_problems(dim, [int(m) for m in channel_mults], image_size, attn_list,
                                       num_head_channels, linear_attn)
        if problems:
            raise ValueError("this U-Net cannot be built: " + "; ".join(f"{key}: {why}" for key, why in problems))
        sides = feature_sides(image_size, levels)
        full_at = attention_sides(attn_list, sides)

        self.dims = dims
        self.in_channels = in_channels
        self.out_channels = out_channels or in_channels
        self.image_size = image_size
        self.self_condition = self_condition
        self.checkpointing = checkpointing
        self.attn_res = full_at
        self._memory_format = torch.contiguous_format
        chans = [dim * int(m) for m in channel_mults]
        emb_dim = dim * 4

        def attention(level: int) -> Optional[nn.Module]:
            ch = chans[level]
            if sides[level] in full_at:
                return Attention(ch, num_head_channels)
            if linear_attn:
                return LinearAttention(ch, num_head_channels)
            return None

        self.time_embed = TimeEmbedding(dim, emb_dim)
        self.init_conv = conv_nd(dims, in_channels * (2 if self_condition else 1), dim, 3, padding=1)

        self.down = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        skip_chans: list[int] = []
        ch = dim
        for lv in range(levels):
            steps = nn.ModuleList()
            for _ in range(res_blocks):
                steps.append(_Step(ResBlock(dims, ch, chans[lv], emb_dim, dropout), attention(lv)))
                ch = chans[lv]
                skip_chans.append(ch)
            self.down.append(steps)
            self.downsamples.append(Downsample(dims, ch, ch) if lv < levels - 1 else nn.Identity())

        self.mid = MiddleBlock(dims, ch, emb_dim, dropout, attention(levels - 1))

        self.up = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for lv in reversed(range(levels)):
            steps = nn.ModuleList()
            for _ in range(res_blocks):
                steps.append(_Step(ResBlock(dims, ch + skip_chans.pop(), chans[lv], emb_dim, dropout), attention(lv)))
                ch = chans[lv]
            self.up.append(steps)
            self.upsamples.append(Upsample(dims, ch, chans[lv - 1]) if lv > 0 else nn.Identity())
            if lv > 0:
                ch = chans[lv - 1]

        self.out_norm = GroupNorm(norm_groups(ch), ch)
        self.out_conv = conv_nd(dims, ch, self.out_channels, 3, padding=1)
        if channels_last:
            self.channels_last()

    @classmethod
    def from_config(cls, cfg: Any) -> "UNet":
        """Build from a TrainConfig (ddpm.config): model.unet, dataset.image_size/channels, dims."""
        u = cfg.model.unet
        return cls(
            dims=cfg.dims,
            in_channels=cfg.dataset.image_channels,
            image_size=cfg.dataset.image_size,
            dim=u.dim,
            channel_mults=tuple(u.channel_mults),
            res_blocks=u.res_blocks,
            attn_res=u.attn_res,
            num_head_channels=u.num_head_channels,
            dropout=u.dropout,
            self_condition=u.self_condition,
            linear_attn=u.linear_attn,
            checkpointing=u.checkpointing,
        )

    @property
    def memory_format(self) -> torch.memory_format:
        """channels-last after ``channels_last()``, else contiguous."""
        return self._memory_format

    def channels_last(self) -> "UNet":
        """Put the conv weights in channels-last layout; forward then keeps activations in it
        (faster convolutions with cuDNN / oneDNN, and no layout copies around the attention).
        The default, because the norms have a layout-agnostic CPU backward (``norm_act.py``), so
        training steps are faster in it on CPU and in bf16 on CUDA; in fp32 on CUDA the contiguous
        layout is faster, so the trainer switches to ``contiguous_format()`` there (numbers:
        bench/RESULTS.md "engine"). Checkpoints keep the strides and load into either layout;
        ``ddpm export`` writes contiguous tensors."""
        fmt = torch.channels_last_3d if self.dims == 3 else torch.channels_last
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                m.weight.data = m.weight.data.contiguous(memory_format=fmt)
        self._memory_format = fmt
        return self

    def contiguous_format(self) -> "UNet":
        """Undo ``channels_last()``: contiguous conv weights and activations."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                m.weight.data = m.weight.data.contiguous()
        self._memory_format = torch.contiguous_format
        return self

    def _run(self, step: nn.Module, x: torch.Tensor, emb: torch.Tensor,
             skip: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.checkpointing and torch.is_grad_enabled() and self.training:
            return checkpoint(step, x, emb, skip, use_reentrant=False)
        return step(x, emb, skip)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, x_self_cond: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        if x.dim() != self.dims + 2:
            raise ValueError(
                f"expected a {self.dims + 2}-D input (B, C, {'D, ' if self.dims == 3 else ''}H, W), "
                f"got shape {tuple(x.shape)}"
            )
        if self.self_condition:
            if x_self_cond is None:
                x_self_cond = torch.zeros_like(x)
            x = torch.cat([x, x_self_cond], dim=1)
        fmt = self.memory_format
        if fmt is not torch.contiguous_format:
            if x.shape[1] == 1 and x.is_contiguous():
                # one channel: contiguous and channels-last at once, so .contiguous(memory_format)
                # keeps the strides and the first convolution would answer contiguous; the same
                # memory with channel stride 1 makes it answer channels-last
                x = x.as_strided(x.shape, (x.stride(0), 1, *x.stride()[2:]))
            else:
                x = x.contiguous(memory_format=fmt)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        emb = self.time_embed(t)

        h = self.init_conv(x)
        skips = []
        for steps, down in zip(self.down, self.downsamples):
            for step in steps:
                h = self._run(step, h, emb)
                skips.append(h)
            h = down(h)

        ckpt = self.checkpointing and torch.is_grad_enabled() and self.training
        h = self.mid(h, emb, ckpt)

        for steps, up in zip(self.up, self.upsamples):
            for step in steps:
                h = self._run(step, h, emb, skips.pop())
            # the upsampled map (2x every side, before its conv) is the largest saved tensor
            # outside the steps: recompute it too when checkpointing
            h = checkpoint(up, h, use_reentrant=False) if ckpt and isinstance(up, Upsample) else up(h)

        if ckpt:  # the head's norm and SiLU outputs are full-resolution tensors as well
            return checkpoint(self._head, h, use_reentrant=False)
        return self._head(h)

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        return self.out_conv(self.out_norm.forward_act(h))
