"""The segmenter: the pretrained denoising U-Net, every weight kept, used as a plain network.

As in the fine-tuning protocol of the seed's framework: the whole U-Net (encoder and decoder)
is trained, the time input is fixed (``model.timestep``: the protocol's t = 0 is the noise-free end
of the diffusion; the default is a moderate t, which transferred better on our bench), the
self-conditioning input is zeros, and only the last convolution is replaced, by a new 1x1
convolution with one output per class (the head).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from ddpm.config import ConfigError, TrainConfig, load_config
from ddpm.export import ENCODER_PREFIXES, read_exported, unet_weights
from ddpm.nn import UNet
from ddpm.nn.blocks import conv_nd
from ddpm.run.checkpoint import load_checkpoint, resolve_checkpoint
from ddpm.run.errors import RunError

HEAD_KEYS = ("out_conv.weight", "out_conv.bias")  # of the U-Net: the layer the head replaces


class Segmenter(nn.Module):
    """``forward(x)`` -> class logits (B, K, *spatial) of images (B, C, *spatial) in [-1, 1]."""

    def __init__(self, unet: UNet, num_classes: int, timestep: int = 0) -> None:
        super().__init__()
        self.unet = unet
        self.num_classes = num_classes
        self.timestep = timestep
        unet.out_conv = conv_nd(unet.dims, unet.out_conv.in_channels, num_classes, 1)
        if unet.memory_format is not torch.contiguous_format:
            unet.channels_last()  # the new head in the layout of the rest

    @classmethod
    def from_config(cls, cfg: Any) -> "Segmenter":
        """A new (randomly initialised) segmenter of a resolved FinetuneConfig."""
        return cls(UNet.from_config(cfg), cfg.task.num_classes, cfg.time_input())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.full((x.shape[0],), self.timestep, dtype=torch.long, device=x.device)
        return self.unet(x, t)  # no x_self_cond: the U-Net feeds zeros

    def freeze_encoder(self) -> int:
        """Stop training the encoder (time embedding, first conv, down path, middle block);
        returns how many parameter tensors were frozen."""
        frozen = 0
        for name, p in self.unet.named_parameters():
            if name.startswith(ENCODER_PREFIXES):
                p.requires_grad_(False)
                frozen += 1
        return frozen


@dataclass(frozen=True)
class PretrainedSource:
    """A pretrained U-Net: its training config and weights (U-Net keys, no prefix)."""

    origin: str
    config: TrainConfig
    weights: dict[str, torch.Tensor] = field(repr=False)


def read_pretrained(path: Union[str, Path]) -> PretrainedSource:
    """The U-Net of a training run folder (newest checkpoint, EMA weights when kept) or of a
    full ``ddpm export`` file; RunError naming ``pretrained`` when it is neither."""
    path = Path(path)
    if path.is_dir():
        ckpt_path = resolve_checkpoint(path)
        ckpt = load_checkpoint(ckpt_path)
        if "task" in ckpt["config"]:
            raise RunError(f"pretrained: {path} is a fine-tune run; give a training run or its export")
        return PretrainedSource(str(ckpt_path), load_config(ckpt["config"]),
                                unet_weights(ckpt, use_ema=bool(ckpt.get("ema"))))
    if path.suffix == ".safetensors":
        tensors, meta = read_exported(path)
        if meta.get("layout") != "full":
            raise RunError(f"pretrained: {path} holds the {meta.get('layout')!r} layout; fine-tuning "
                           "loads every weight of a pretrained U-Net: export a training run in full")
        return PretrainedSource(str(path), load_config(json.loads(meta["config"])), tensors)
    raise RunError(f"pretrained: {path} is neither a training run folder nor a .safetensors export")


def load_segmenter(path: Union[str, Path], map_location: Union[str, torch.device] = "cpu"
                   ) -> tuple[Segmenter, Any]:
    """(segmenter in eval mode, its FinetuneConfig) of ``ddpm export`` of a fine-tune run."""
    from ddpm.config import load_finetune_config, saved_finetune_config

    tensors, meta = read_exported(path)
    if meta.get("layout") != "segmenter":
        raise RunError(f"{path} holds the {meta.get('layout')!r} layout, not a fine-tuned segmenter")
    cfg = load_finetune_config(saved_finetune_config(json.loads(meta["config"])))
    seg = Segmenter.from_config(cfg)
    seg.unet.load_state_dict(tensors, strict=True)
    return seg.to(map_location).eval(), cfg


@dataclass(frozen=True)
class LoadReport:
    """What loading pretrained weights did: ``missing`` and ``unexpected`` are the U-Net's
    keys besides the new head (both empty, or loading raises); ``new`` are the head's."""

    loaded: int
    missing: list[str]
    unexpected: list[str]
    new: list[str]


def load_backbone(seg: Segmenter, weights: dict[str, torch.Tensor]) -> LoadReport:
    """Load every pretrained weight but the replaced last conv into ``seg``; strict otherwise."""
    kept = {k: v for k, v in weights.items() if k not in HEAD_KEYS}
    own = seg.unet.state_dict()
    shapes = [k for k in kept if k in own and tuple(own[k].shape) != tuple(kept[k].shape)]
    if shapes:
        k = shapes[0]
        raise RunError(f"pretrained: {k} has shape {tuple(kept[k].shape)}, the segmenter expects "
                       f"{tuple(own[k].shape)} ({len(shapes)} mismatched)")
    result = seg.unet.load_state_dict(kept, strict=False)
    missing = sorted(set(result.missing_keys) - set(HEAD_KEYS))
    unexpected = sorted(result.unexpected_keys)
    if missing or unexpected:
        raise RunError(f"pretrained: weights do not fit this U-Net: missing {missing[:5]}, "
                       f"unexpected {unexpected[:5]}")
    return LoadReport(len(kept), missing, unexpected, sorted(set(result.missing_keys) & set(HEAD_KEYS)))


def build_segmenter(cfg: Any, source: Optional[PretrainedSource], cls: type[Segmenter] = Segmenter
                    ) -> tuple[Segmenter, Optional[LoadReport]]:
    """The segmenter (``cls``) of a resolved FinetuneConfig, pretrained weights loaded when
    given, the encoder frozen when ``model.freeze`` says so."""
    seg = cls.from_config(cfg)
    report = load_backbone(seg, source.weights) if source is not None else None
    if cfg.model.freeze == "encoder":
        if source is None:
            raise ConfigError([("model.freeze", "'encoder' keeps pretrained weights fixed; a scratch "
                                                "run (pretrained null) has none: use 'none'")])
        seg.freeze_encoder()
    return seg, report
