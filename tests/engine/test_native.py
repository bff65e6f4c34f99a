"""The C++ CPU kernels (ddpm/nn/kernels/csrc, loaded by ddpm/nn/kernels/loader.py) against float64 references.

They must build here: `make system-deps` installs g++, so a build failure is a failure, not a
silent fallback. The fallback itself (no compiler) is tested in a subprocess.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ddpm.nn import kernels
from ddpm.nn.norm_act import group_norm_act
from norm_reference import reference_norm_act

ROOT = Path(__file__).resolve().parents[2]


def test_the_kernels_build_and_load_here():
    assert kernels.available(), kernels.status()
    assert kernels.status() == "native CPU kernels loaded"


@pytest.mark.parametrize("disabled", [False, True])
def test_ddpm_kernels_command_says_whether_training_uses_them(disabled):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if disabled:
        env["DDPM_NATIVE"] = "0"
    r = subprocess.run([sys.executable, "-m", "ddpm", "kernels"], capture_output=True, text=True, env=env,
                       timeout=240)
    if disabled:
        assert r.returncode == 1 and "not in use: disabled by DDPM_NATIVE=0" in r.stdout
    else:
        assert r.returncode == 0 and r.stdout.startswith("native CPU kernels loaded"), r.stdout + r.stderr
        assert kernels.build_name() in r.stdout  # the cache entry this process loaded too


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last_3d if x.dim() == 5 else torch.channels_last)


def _leaves(shape, dtype, affine, scale_shift, seed=0):
    g = torch.Generator().manual_seed(seed)
    b, c = shape[:2]
    # mean 20, spread 3: sums of raw x in fp32 over a long map would lose the variance
    x64 = torch.randn(*shape, generator=g, dtype=torch.float64) * 3 + 20
    x = _channels_last(x64.to(dtype)).requires_grad_()
    params = [torch.randn(c, generator=g) if affine else None, torch.randn(c, generator=g) if affine else None,
              torch.randn(b, c, generator=g) * 0.5 if scale_shift else None,
              torch.randn(b, c, generator=g) if scale_shift else None]
    return x, [p.requires_grad_() if p is not None else None for p in params]


# bf16 keeps 8 bits: inputs and outputs are rounded at 2^-9 relative, so its bounds are that size
TOL = {torch.float32: dict(atol=2e-4, rtol=2e-4), torch.bfloat16: dict(atol=0.06, rtol=0.02)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape,groups", [((2, 32, 12, 12), 8), ((3, 96, 5, 7), 32), ((2, 64, 6, 5, 7), 8),
                                          ((1, 20, 4, 4, 4), 20), ((2, 8, 70, 70), 1)])
@pytest.mark.parametrize("affine,scale_shift,act", [(True, False, True), (False, True, True), (True, False, False),
                                                    (True, True, True)])
def test_norm_act_kernel_matches_float64_autograd(dtype, shape, groups, affine, scale_shift, act):
    x, (w, b, sc, sh) = _leaves(shape, dtype, affine, scale_shift)
    out = group_norm_act(x, groups, w, b, 1e-5, sc, sh, act)
    assert out.grad_fn.name() == "NativeNormActBackward"  # the kernel, not the PyTorch-op node
    assert out.dtype == dtype
    assert out.is_contiguous(memory_format=torch.channels_last_3d if out.dim() == 5 else torch.channels_last)
    as64 = [t.detach().double().requires_grad_() if t is not None else None for t in (x, w, b, sc, sh)]
    ref = reference_norm_act(as64[0], groups, *as64[1:], act)
    torch.testing.assert_close(out.double(), ref, **TOL[dtype])

    grad = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    leaves = [t for t in (x, w, b, sc, sh) if t is not None]
    got = torch.autograd.grad(out, leaves, _channels_last(grad.to(dtype)))
    want = torch.autograd.grad(ref, [t for t in as64 if t is not None], grad)
    for name, g1, g2 in zip("x w b scale shift".split(), got, want):
        scale = g2.abs().max().item() + 1e-12
        err = (g1.double() - g2).abs().max().item() / scale
        assert err < (2e-4 if dtype == torch.float32 else 0.03), f"d{name}: max error {err:.2e} of its range"


def test_maps_too_big_to_keep_dz_recompute_it_and_agree():
    # 2 x 16 x 256 x 260 = 2.13M elements: above the kernel's 2^21 limit for keeping dz in fp32
    x, (w, b, sc, sh) = _leaves((2, 16, 256, 260), torch.float32, True, True)
    out = group_norm_act(x, 4, w, b, 1e-5, sc, sh, True)
    as64 = [t.detach().double().requires_grad_() for t in (x, w, b, sc, sh)]
    ref = reference_norm_act(as64[0], 4, *as64[1:], True)
    grad = torch.randn(ref.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    got = torch.autograd.grad(out, (x, w, sc), _channels_last(grad.float()))
    want = torch.autograd.grad(ref, (as64[0], as64[1], as64[3]), grad)
    for g1, g2 in zip(got, want):
        assert (g1.double() - g2).abs().max().item() / g2.abs().max().item() < 2e-4


def test_statistics_and_gradients_are_the_same_every_run():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x, (w, b, sc, sh) = _leaves((3, 64, 40, 41), torch.bfloat16, True, True)
        grad = _channels_last(torch.randn(x.shape).to(torch.bfloat16))
        runs = []
        for _ in range(3):
            out = group_norm_act(x, 8, w, b, 1e-5, sc, sh, True)
            runs.append([out, *torch.autograd.grad(out, (x, w, sc), grad)])
        assert all(torch.equal(a, b_) for run in runs[1:] for a, b_ in zip(runs[0], run))
    finally:
        torch.set_num_threads(threads)


def test_a_contiguous_incoming_gradient_gives_the_same_result():
    x, (w, b, sc, sh) = _leaves((2, 16, 9, 9), torch.float32, True, True)
    out = group_norm_act(x, 4, w, b, 1e-5, sc, sh, True)
    grad = torch.randn(out.shape)
    d_cl = torch.autograd.grad(out, x, _channels_last(grad), retain_graph=True)[0]
    d_contig = torch.autograd.grad(out, x, grad.contiguous())[0]
    torch.testing.assert_close(d_cl, d_contig)


def test_inference_matches_training_forward_and_nan_propagates():
    x, (w, b, sc, sh) = _leaves((2, 32, 8, 8), torch.bfloat16, True, True)
    with torch.no_grad():
        inf = group_norm_act(x, 8, w, b, 1e-5, sc, sh, True)
    torch.testing.assert_close(inf, group_norm_act(x, 8, w, b, 1e-5, sc, sh, True))
    bad = x.detach().clone()
    bad[0, 0, 0, 0] = float("nan")
    with torch.no_grad():
        out = group_norm_act(bad, 8, w, b, 1e-5, sc, sh, True)
    # group 0 of sample 0 (channels 0-3) has NaN statistics; nothing else is touched
    assert out[0, :4].isnan().all() and not out[0, 4:].isnan().any() and not out[1].isnan().any()


def test_contiguous_or_float64_inputs_keep_the_pytorch_op_node():
    x = torch.randn(2, 8, 6, 6, requires_grad=True)  # contiguous
    assert group_norm_act(x, 4).grad_fn.name() == "_NormScaleShiftActBackward"
    x64 = _channels_last(torch.randn(2, 8, 6, 6, dtype=torch.float64)).requires_grad_()
    assert group_norm_act(x64, 4).grad_fn.name() == "_NormScaleShiftActBackward"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("n", [1, 17, 256, 1000])
def test_softmax_kernel_and_its_backward(dtype, n):
    g = torch.Generator().manual_seed(n)
    s = torch.randn(6, 5, n, generator=g, dtype=torch.float64) * 8
    s[0, 0, : max(1, n // 2)] = float("-inf")  # a masked row half
    s[1, 1] += 3000.0  # large logits: the row maximum keeps exp in range
    s = s.to(dtype)  # the reference sees the same rounded logits (bf16 steps by 16 at 3000)
    want = torch.softmax(s.double(), -1)
    got = kernels.ops().softmax_(s.clone())
    assert got.dtype == dtype
    # n = 1 with the row masked: NaN, as torch gives for a row of only -inf
    torch.testing.assert_close(got.double(), want, atol=1e-6 if dtype == torch.float32 else 4e-3, rtol=0.01,
                               equal_nan=True)
    dp = torch.randn(s.shape, generator=g, dtype=torch.float64)
    want_ds = torch.ops.aten._softmax_backward_data(dp, want, -1, torch.float64)
    got_ds = kernels.ops().softmax_backward_(dp.to(dtype).contiguous(), got)
    ok = ~want_ds.isnan()
    scale = want_ds[ok].abs().max().item() or 1.0  # n = 1: the gradient is exactly 0
    assert (got_ds.double() - want_ds)[ok].abs().max().item() / scale < (1e-5 if dtype == torch.float32 else 0.02)


def test_softmax_kernel_gives_nan_for_a_row_holding_nan():
    s = torch.zeros(2, 40)
    s[0, 3] = float("nan")
    out = kernels.ops().softmax_(s)
    assert out[0].isnan().all() and torch.allclose(out[1], torch.full((40,), 1 / 40))


_FALLBACK = """
import logging, torch
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
from ddpm import DDPM
from ddpm.nn import kernels
m = DDPM(image_size=16, channels=1, device="cpu", is_3d=False)
x = torch.randn(2, 1, 16, 16)
loss = m.p_losses(x, m.sample_timesteps(2))
loss.backward()
print("available", kernels.available(), "loss", float(loss))
print("status", kernels.status())
"""


@pytest.mark.parametrize("env", [{"DDPM_NATIVE": "0"}, {"CXX": "/nonexistent/c++"}])
def test_without_the_kernels_training_still_runs_and_says_why(env, tmp_path):
    full = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext"), "PYTHONPATH": str(ROOT), **env}
    r = subprocess.run([sys.executable, "-c", _FALLBACK], capture_output=True, text=True, env=full, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "available False" in r.stdout and "loss nan" not in r.stdout
    if "DDPM_NATIVE" in env:
        assert "disabled by DDPM_NATIVE=0" in r.stdout
    else:  # the build failed: one warning in the log that names the reason and the way out
        assert "native CPU kernels unavailable" in r.stderr and "install g++" in r.stderr
        assert "native CPU kernels not in use" in r.stdout
