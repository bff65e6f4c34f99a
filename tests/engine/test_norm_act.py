"""The fused GroupNorm + scale/shift + SiLU node (ddpm/nn/norm_act.py) against the plain ops.

The node has a hand-written backward, so every gradient it returns is compared with autograd
through F.group_norm -> (1 + scale), + shift -> SiLU, in float64, in both memory layouts.
"""
import pytest
import torch

from ddpm.nn.norm_act import group_norm_act
from norm_reference import reference_norm_act

torch.set_num_threads(1)


def _layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    if not channels_last:
        return x.contiguous()
    return x.contiguous(memory_format=torch.channels_last_3d if x.dim() == 5 else torch.channels_last)


def _inputs(shape, channels_last, affine, scale_shift, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    b, c = shape[:2]
    # a large mean relative to the spread: the case where sums over raw x would cancel
    x = _layout(torch.randn(*shape, generator=g, dtype=dtype) * 3 + 20, channels_last).requires_grad_()
    w = torch.randn(c, generator=g, dtype=dtype).requires_grad_() if affine else None
    bias = torch.randn(c, generator=g, dtype=dtype).requires_grad_() if affine else None
    sc = torch.randn(b, c, generator=g, dtype=dtype).requires_grad_() if scale_shift else None
    sh = torch.randn(b, c, generator=g, dtype=dtype).requires_grad_() if scale_shift else None
    return x, w, bias, sc, sh


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("affine,scale_shift,act", [
    (True, False, True),    # ResBlock norm1 and the output head
    (False, True, True),    # ResBlock norm2 with the time embedding's scale and shift
    (True, False, False),   # the attention's pre-norm
    (True, True, False),
])
def test_forward_and_every_gradient_match_the_plain_ops(dims, channels_last, affine, scale_shift, act):
    x, w, b, sc, sh = _inputs((2, 8, *([6] * dims)), channels_last, affine, scale_shift)
    out = group_norm_act(x, 4, w, b, 1e-5, sc, sh, act)
    ref = reference_norm_act(x, 4, w, b, sc, sh, act)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-10)
    assert out.is_contiguous(memory_format=torch.channels_last_3d if dims == 3 else torch.channels_last) == channels_last
    grad = torch.randn_like(ref)
    leaves = [t for t in (x, w, b, sc, sh) if t is not None]
    got = torch.autograd.grad(out, leaves, grad)
    want = torch.autograd.grad(ref, leaves, grad)
    for name, g1, g2 in zip(["x", "weight", "bias", "scale", "shift"], got, want):
        torch.testing.assert_close(g1, g2, atol=1e-10, rtol=1e-8, msg=name)


@pytest.mark.parametrize("channels_last", [False, True])
def test_big_few_channel_maps_take_the_matmul_sums_and_stay_exact(channels_last):
    # >= 4M elements with <= 64 channels: the per-channel dot products come from one bmm
    x, w, b, sc, sh = _inputs((1, 32, 32, 64, 64), channels_last, affine=False, scale_shift=True)
    out = group_norm_act(x, 32, w, b, 1e-5, sc, sh)
    ref = reference_norm_act(x, 32, w, b, sc, sh, True)
    grad = torch.randn_like(ref)
    got = torch.autograd.grad(out, [x, sc, sh], grad)
    want = torch.autograd.grad(ref, [x, sc, sh], grad)
    for g1, g2 in zip(got, want):
        torch.testing.assert_close(g1, g2, atol=1e-9, rtol=1e-7)


def test_bf16_gradients_stay_close_to_fp32():
    x, w, b, sc, sh = _inputs((2, 64, 16, 16, 16), True, affine=True, scale_shift=True, dtype=torch.float32)
    grad = torch.randn(x.shape)
    want = torch.autograd.grad(reference_norm_act(x, 32, w, b, sc, sh, True), [x, w, sc], grad)
    xb = x.detach().bfloat16().requires_grad_()
    scb, shb = sc.detach().bfloat16().requires_grad_(), sh.detach().bfloat16().requires_grad_()
    out = group_norm_act(xb, 32, w, b, 1e-5, scb, shb)
    assert out.dtype == torch.bfloat16
    got = torch.autograd.grad(out, [xb, w, scb], grad.bfloat16())
    for name, g1, g2 in zip(["x", "weight", "scale"], got, want):
        err = (g1.float() - g2).norm() / g2.norm()
        assert err < 0.02, (name, float(err))


@pytest.mark.parametrize("side", [8, 32])  # 8^2 < 1024 positions takes the contiguous-copy path
@pytest.mark.parametrize("channels_last", [False, True])
def test_inference_runs_in_place_and_matches(side, channels_last):
    x, w, b, sc, sh = _inputs((2, 64, side, side), channels_last, affine=True, scale_shift=True, dtype=torch.float32)
    with torch.no_grad():
        out = group_norm_act(x, 32, w, b, 1e-5, sc, sh)
        ref = reference_norm_act(x, 32, w, b, sc, sh, True)
    torch.testing.assert_close(out, ref, atol=2e-4, rtol=1e-4)  # fp32, mean 20 std 3
    assert out.is_contiguous(memory_format=torch.channels_last) == channels_last
