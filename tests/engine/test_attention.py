"""Full attention: the chunked CPU path (bf16/fp16) against scaled_dot_product_attention."""
import pytest
import torch
import torch.nn.functional as F

from ddpm.nn.attention import Attention
from ddpm.nn.cpu_attention import chunk_size, chunked_attention

torch.set_num_threads(1)


@pytest.mark.parametrize("tokens,chunk", [(200, 64), (200, 200), (130, 128)])  # remainders too
def test_chunked_attention_and_its_recomputing_backward_are_exact(tokens, chunk):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, tokens, 16, generator=g, dtype=torch.float64, requires_grad=True)
               for _ in range(3))
    got = chunked_attention(q, k, v, chunk=chunk)
    want = F.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10)
    grad = torch.randn(want.shape, generator=g, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(got, (q, k, v), grad), torch.autograd.grad(want, (q, k, v), grad)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


def test_chunk_size_keeps_the_score_matrix_within_budget():
    assert chunk_size(8, 4096) == 128          # 3D 64^3, batch 2: 8 x 128 x 4096 = 4M scores
    assert chunk_size(32, 256) == 256          # 2D 64^2, batch 8: one chunk
    assert chunk_size(64, 1 << 16) == 64       # never below 64 rows


def _run(module: Attention, x: torch.Tensor, bf16: bool):
    x = x.detach().clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        y = module(x)
    y.float().square().mean().backward()
    grads = [p.grad.clone() for p in module.parameters()] + [x.grad.clone()]
    module.zero_grad()
    return y.float(), grads


@pytest.mark.parametrize("dims,side", [(2, 16), (3, 8)])  # 256 and 512 tokens
def test_bf16_module_path_is_as_close_to_fp32_as_sdpa(dims, side, monkeypatch):
    torch.manual_seed(0)
    module = Attention(64, 32)
    x = torch.randn(2, 64, *([side] * dims))
    want, want_g = _run(module, x, bf16=False)  # fp32: SDPA
    got, got_g = _run(module, x, bf16=True)     # bf16: chunked
    monkeypatch.setattr(Attention, "CPU_CHUNKED", False)
    sdpa, sdpa_g = _run(module, x, bf16=True)   # bf16 through SDPA's CPU kernel
    for a in (got, sdpa):
        assert (a - want).norm() / want.norm() < 0.02
    for a, b, c in zip(got_g, sdpa_g, want_g):
        assert (a - c).norm() <= 2 * (b - c).norm() + 0.01 * c.norm()
