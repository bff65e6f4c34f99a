"""Size of a config's model before anything is built (torch-free, for the API and the form):
the exact U-Net parameter count and an estimate of the memory a training step needs.

The count walks the same layout as ``ddpm.nn.unet.UNet`` layer by layer; a test checks it
equals ``sum(p.numel())`` of the real model over many shapes, so a change of the U-Net that
forgets this module fails there.
"""
from __future__ import annotations

from ddpm.config import TrainConfig
from ddpm.config.rules import attention_sides, feature_sides


def count_unet_parameters(cfg: TrainConfig) -> int:
    """Parameters of ``UNet.from_config(cfg)``, exactly."""
    dims, u = cfg.dims, cfg.model.unet
    in_ch, dim = cfg.dataset.image_channels, u.dim
    k3 = 3 ** dims  # a 3x3(x3) kernel
    chans = [dim * m for m in u.channel_mults]
    levels, emb = len(chans), dim * 4
    sides = feature_sides(cfg.dataset.image_size, levels)
    full_at = attention_sides(u.attn_res, sides)

    def conv(ci: int, co: int, k: int = k3) -> int:
        return k * ci * co + co

    def linear(a: int, b: int) -> int:
        return a * b + b

    def res(ci: int, co: int) -> int:
        # affine first norm, conv, time scale/shift, affine-free second norm, conv, 1x1 skip
        return 2 * ci + conv(ci, co) + linear(emb, 2 * co) + conv(co, co) + (conv(ci, co, 1) if ci != co else 0)

    def attn(level: int) -> int:
        c = chans[level]
        # full and linear attention have the same parameters: norm, qkv, output projection
        return 2 * c + linear(c, 3 * c) + linear(c, c) if sides[level] in full_at or u.linear_attn else 0

    n = linear(dim, emb) + linear(emb, emb)  # time embedding MLP
    n += conv(in_ch * (2 if u.self_condition else 1), dim)
    skips: list[int] = []
    ch = dim
    for lv in range(levels):
        for _ in range(u.res_blocks):
            n += res(ch, chans[lv]) + attn(lv)
            ch = chans[lv]
            skips.append(ch)
        if lv < levels - 1:
            n += conv(ch, ch, 2 ** dims)  # kernel-2 stride-2 downsampling
    n += res(ch, ch) + attn(levels - 1) + res(ch, ch)  # middle block
    for lv in reversed(range(levels)):
        for _ in range(u.res_blocks):
            n += res(ch + skips.pop(), chans[lv]) + attn(lv)
            ch = chans[lv]
        if lv > 0:
            n += conv(ch, chans[lv - 1])  # upsampling conv
            ch = chans[lv - 1]
    return n + 2 * ch + conv(ch, in_ch)  # output norm and conv


def activation_elements(cfg: TrainConfig) -> int:
    """Activation elements one training sample keeps for the backward pass (an estimate).

    Basis, per layer of ``ddpm.nn``: a ResBlock (ci -> co) on N positions keeps its input and
    the activated norm output (2 ci N) and its conv output and activated second norm (2 co N);
    attention keeps the normed tokens, q/k/v, the attended values and the projection input
    (6 c N; the softmax scores are not kept: SDPA and the chunked CPU kernel recompute them);
    down/upsampling keep their conv input. With ``checkpointing`` only each block's input is
    kept, plus the largest block's activations while it is recomputed.
    """
    dims, u = cfg.dims, cfg.model.unet
    chans = [u.dim * m for m in u.channel_mults]
    levels = len(chans)
    sides = feature_sides(cfg.dataset.image_size, levels)
    positions = [s ** dims for s in sides]
    full_at = attention_sides(u.attn_res, sides)
    blocks: list[tuple[int, int]] = []  # (elements kept inside the block, elements of its input)

    def step(lv: int, ci: int, co: int) -> None:
        inner = (2 * ci + 2 * co) * positions[lv]
        if sides[lv] in full_at or u.linear_attn:
            inner += 6 * co * positions[lv]
        blocks.append((inner, ci * positions[lv]))

    in_ch = cfg.dataset.image_channels * (2 if u.self_condition else 1)
    total = (in_ch + u.dim) * positions[0]  # input and first conv output
    skips: list[int] = []
    ch = u.dim
    for lv in range(levels):
        for _ in range(u.res_blocks):
            step(lv, ch, chans[lv])
            ch = chans[lv]
            skips.append(ch)
        if lv < levels - 1:
            total += ch * positions[lv]
    step(levels - 1, ch, ch)
    step(levels - 1, ch, ch)
    for lv in reversed(range(levels)):
        for _ in range(u.res_blocks):
            step(lv, ch + skips.pop(), chans[lv])
            ch = chans[lv]
        if lv > 0:
            total += ch * positions[lv - 1]  # the nearest-upsampled map the conv reads
            ch = chans[lv - 1]
    total += 2 * ch * positions[0]  # output norm input and activation
    edges = (in_ch + u.dim + 2 * ch) * positions[0]
    if u.checkpointing:  # the sampling convs read block inputs, which are kept anyway
        return edges + sum(b for _, b in blocks) + max(i for i, _ in blocks)
    return total + sum(i for i, _ in blocks)


# Bytes per parameter held through training: fp32 weights, gradients and AdamW's two moments,
# plus the fp32 EMA copy when use_ema.
_STATE_BYTES = 16
_EMA_BYTES = 4
# What a step needs beyond the weights, the optimizer state and the kept activations: the
# gradients of activations and the convolution workspaces of the backward pass, allocator
# slack. A round factor, chosen so the estimate lands within about 10% of the peak CUDA memory
# of whole training runs (bench/RESULTS.md, "gpu engine": 32³ and 64³, fp32 and bf16, with and
# without checkpointing, batch 2 and 8) and of the CPU peak RSS of the "unet" section there
# less the process's own ~0.3 GB; tests/engine/test_model_size.py checks the activation part
# against the bytes autograd really keeps.
_OVERHEAD = 1.5


def estimate_train_memory_bytes(cfg: TrainConfig) -> int:
    """Estimated peak memory of one training step (weights, optimizer state, EMA, activations of
    one micro-batch) on the training device; the CUDA context or the Python process come on top.
    An estimate: it is meant to tell 1 GB from 10 GB, not to be exact."""
    params = count_unet_parameters(cfg)
    state = params * (_STATE_BYTES + (_EMA_BYTES if cfg.model.use_ema else 0))
    # "auto" counts as fp32: the device is not known here, and fp32 is the larger estimate
    half = cfg.model.precision in ("bf16", "fp16")
    if half:
        state += 2 * params  # autocast's half-precision copies of the weights
    act = activation_elements(cfg) * cfg.dataset.batch_size * (2 if half else 4)
    return int((state + act) * _OVERHEAD)
