"""Softmax attention for bf16/fp16 on CPU, in query chunks with a recomputing backward.

Why not ``scaled_dot_product_attention``: with 32 channels per head its CPU flash kernel uses a
small fraction of the CPU's bf16 GEMM speed, and plain batched matmuls and softmax over query
chunks are faster at every size a U-Net uses (bench/RESULTS.md "engine"). Like flash attention it keeps only q, k and v for the backward pass and
recomputes each chunk's probabilities there, so memory stays linear in the number of tokens;
the score buffers are kept between calls (``_scratch``), because a fresh large tensor costs
more in page faults than the matmuls themselves. Softmax and its backward run in place in the
native kernels (``kernels/csrc/softmax.cpp``) when built; torch's ops then need one spare buffer. In fp32 the flash
kernel is the faster one and is kept (see ``Attention``).
"""
from __future__ import annotations

import threading
from typing import Optional

import torch
from torch.autograd.function import once_differentiable

from . import kernels

_aten = torch.ops.aten
SCORE_BUDGET = 1 << 22  # elements of one chunk's score matrix (8 MB in bf16)


def chunk_size(batch_heads: int, tokens: int, budget: int = SCORE_BUDGET) -> int:
    """Query rows per chunk: the score matrix (batch_heads, chunk, tokens) within ``budget``."""
    return max(64, min(tokens, budget // max(batch_heads * tokens, 1)))


def _native_softmax(dtype: torch.dtype) -> bool:
    return dtype in (torch.bfloat16, torch.float32) and kernels.available()


def _softmax(s: torch.Tensor, spare: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim of the scores s: in place by the native kernel (bf16/fp32; it
    reads each row once), else into ``spare``. Returns the probabilities."""
    if _native_softmax(s.dtype):
        return kernels.ops().softmax_(s)
    return _aten._softmax.out(s, -1, False, out=spare)  # accumulates in fp32 internally


def _softmax_backward(dp: torch.Tensor, p: torch.Tensor, spare: torch.Tensor) -> torch.Tensor:
    """The scores' gradient from dp = dL/dp: in place in dp natively, else into ``spare``."""
    if _native_softmax(dp.dtype):
        return kernels.ops().softmax_backward_(dp, p)
    return _aten._softmax_backward_data.out(dp, p, -1, dp.dtype, grad_input=spare)


_kept = threading.local()


def _scratch(slot: str, count: int, numel: int, like: torch.Tensor) -> list[torch.Tensor]:
    """``count`` flat score buffers of ``numel`` elements, kept per thread between calls.

    A fresh buffer per call is returned to the OS by glibc's malloc when freed (it is mmapped)
    and page-faulted back in by the next call, a visible share of the attention's time. At most
    ``count`` x SCORE_BUDGET elements stay allocated (24 MB in bf16 with the native softmax).
    """
    key = (slot, like.dtype, like.device)
    kept = getattr(_kept, "buffers", None)
    if kept is None:
        kept = _kept.buffers = {}
    bufs = kept.get(key)
    if bufs is None or len(bufs) < count or bufs[0].numel() < numel:
        # normal tensors even when the first call runs under torch.inference_mode(): an inference
        # tensor could never be written again outside it (a later training step would raise)
        with torch.inference_mode(False):
            bufs = kept[key] = [torch.empty(numel, dtype=like.dtype, device=like.device)
                                for _ in range(count)]
    return [b[:numel] for b in bufs[:count]]


class _ChunkedAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, chunk: int):  # type: ignore[override]
        b, h, n, d = q.shape
        scale = d ** -0.5
        qs = (q * scale).reshape(b * h, n, d)
        kf, vf = k.reshape(b * h, n, d), v.reshape(b * h, n, d)
        out = torch.empty(b * h, n, d, dtype=q.dtype, device=q.device)
        spare = not _native_softmax(q.dtype)  # torch's softmax writes into a second buffer
        bufs = _scratch("forward", 1 + spare, b * h * min(chunk, n) * n, q)
        kt = kf.transpose(1, 2)
        for i in range(0, n, chunk):
            c = min(chunk, n - i)
            s, p = (bufs[j % len(bufs)][: b * h * c * n].view(b * h, c, n) for j in range(2))
            torch.bmm(qs[:, i:i + c], kt, out=s)
            if c == n:  # one chunk: straight into the output
                torch.bmm(_softmax(s, p), vf, out=out)
            else:
                out[:, i:i + c] = torch.bmm(_softmax(s, p), vf)
        ctx.save_for_backward(qs, kf, vf)
        ctx.chunk, ctx.scale, ctx.shape = chunk, scale, (b, h, n, d)
        return out.view(b, h, n, d)

    @staticmethod
    @once_differentiable  # a second derivative would need autograd through this backward
    def backward(ctx, grad):  # type: ignore[override]
        qs, kf, vf = ctx.saved_tensors
        bh, n, d = qs.shape
        chunk = ctx.chunk
        grad = grad.reshape(bh, n, d)
        kt, vt = kf.transpose(1, 2), vf.transpose(1, 2)
        spare = not _native_softmax(qs.dtype)
        bufs = _scratch("backward", 2 + spare, bh * min(chunk, n) * n, qs)
        if chunk >= n:  # one chunk: every product straight into its result, no accumulators
            s, dp = (buf[: bh * n * n].view(bh, n, n) for buf in bufs[:2])
            p = _softmax(torch.bmm(qs, kt, out=s), bufs[-1][: bh * n * n].view(bh, n, n))
            dv = torch.bmm(p.transpose(1, 2), grad)
            torch.bmm(grad, vt, out=dp)
            ds = _softmax_backward(dp, p, s if p is not s else dp)
            dq = torch.bmm(ds, kf).mul_(ctx.scale)
            dk = torch.bmm(ds.transpose(1, 2), qs)
            shape = ctx.shape
            return dq.view(shape), dk.view(shape), dv.view(shape), None
        acc = torch.float64 if qs.dtype == torch.float64 else torch.float32
        dq = torch.empty_like(qs)
        dk = torch.zeros(bh, n, d, dtype=acc, device=qs.device)
        dv = torch.zeros(bh, n, d, dtype=acc, device=qs.device)
        part = torch.empty_like(qs)
        for i in range(0, n, chunk):
            c = min(chunk, n - i)
            # p is the spare buffer for torch's softmax; with the native one it aliases s, unused
            s, dp, p = (bufs[j % len(bufs)][: bh * c * n].view(bh, c, n) for j in range(3))
            q_c, g_c = qs[:, i:i + c], grad[:, i:i + c]
            torch.bmm(q_c, kt, out=s)
            p_c = _softmax(s, p)  # the forward's probabilities, recomputed
            dv += torch.bmm(p_c.transpose(1, 2), g_c, out=part)
            torch.bmm(g_c, vt, out=dp)
            ds = _softmax_backward(dp, p_c, s if p_c is not s else dp)  # the scores' gradient
            dq[:, i:i + c] = torch.bmm(ds, kf)
            dk += torch.bmm(ds.transpose(1, 2), q_c, out=part)
        shape = ctx.shape
        return ((dq * ctx.scale).view(shape), dk.to(qs.dtype).view(shape),
                dv.to(qs.dtype).view(shape), None)


def chunked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      chunk: Optional[int] = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v for (B, heads, N, d) tensors, as SDPA without a mask."""
    b, h, n, _ = q.shape
    chunk = chunk or chunk_size(b * h, n)
    if q.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(q.device.type):
        with torch.autocast(q.device.type, enabled=False):  # out= ops; inputs are already cast
            return _ChunkedAttention.apply(q, k, v, chunk)
    return _ChunkedAttention.apply(q, k, v, chunk)
