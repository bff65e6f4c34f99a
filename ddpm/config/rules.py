"""The shape rules of a config (torch-free): which feature-map sides a U-Net has, where
attention runs, why a shape cannot be built, and how a global batch splits across processes.
``ddpm.config`` re-exports these names; ``TrainConfig`` reports the U-Net problems by key path and
``UNet`` raises them for a direct construction; the engine (``ddpm.train.distributed``) and the
API's job creation both apply the batch rule, so the rules live here only."""
from __future__ import annotations

from typing import Optional

from ddpm.config.errors import ConfigError


def feature_sides(image_size: int, levels: int) -> list[int]:
    """Feature-map side at each U-Net level, from the input down to the lowest."""
    return [image_size // 2 ** i for i in range(levels)]


def attention_sides(attn_res: Optional[list[int]], sides: list[int]) -> list[int]:
    """The sides where full attention runs: ``attn_res``, or the lowest level's side when null."""
    return [sides[-1]] if attn_res is None else list(attn_res)


def unet_shape_problems(dim: int, channel_mults: list[int], image_size: int,
                        attn_res: Optional[list[int]], num_head_channels: int,
                        linear_attn: bool = False) -> list[tuple[str, str]]:
    """Why a U-Net of this shape cannot be built, as (U-Net key, reason) pairs; [] when it can."""
    errs: list[tuple[str, str]] = []
    levels = len(channel_mults)
    factor = 2 ** (levels - 1)
    if image_size % factor:
        ok = valid_sizes_near(image_size, factor)
        return [("image_size", f"{image_size} cannot pass through {levels} levels (must be divisible "
                               f"by {factor}); try {' or '.join(map(str, ok))}")]
    sides = feature_sides(image_size, levels)
    for side in attn_res or []:
        if side not in sides:
            errs.append(("attn_res", f"{side} is not a feature-map side; the sides are {sides}"))
    channels = [dim * m for m in channel_mults]
    full = attention_sides(attn_res, sides)
    for level, side in enumerate(sides):
        if side in full or linear_attn:
            if channels[level] % num_head_channels:
                errs.append(("num_head_channels", f"{num_head_channels} does not divide the "
                                                  f"{channels[level]} channels at side {side}"))
    if dim % 8:
        errs.append(("dim", f"{dim} must be a multiple of 8 (GroupNorm groups)"))
    return errs


def valid_sizes_near(size: int, factor: int) -> list[int]:
    """The two sizes around ``size`` that a U-Net with this downsampling factor accepts."""
    lower = max(factor, size // factor * factor)
    return sorted({lower, lower + factor})


def batch_split_problems(batch_size: int, processes: int) -> list[tuple[str, str]]:
    """Why a global micro-batch of ``batch_size`` cannot run as ``processes`` processes, as
    (config key, reason) pairs; [] when it splits evenly. The batch is global (the same training
    whatever the process count, the learning rate never scaled), so each process takes an equal
    share and a remainder would change what one optimizer step sees."""
    if batch_size % processes:
        return [("dataset.batch_size", f"{batch_size} cannot be split evenly across {processes} processes; "
                                       f"use a multiple of {processes} (the batch is global: each process "
                                       "takes batch_size / processes)")]
    return []


def split_batch(batch_size: int, processes: int) -> int:
    """Samples per process of a global micro-batch of ``batch_size``; a ConfigError naming the
    numbers when it does not split evenly."""
    problems = batch_split_problems(batch_size, processes)
    if problems:
        raise ConfigError(problems)
    return batch_size // processes
