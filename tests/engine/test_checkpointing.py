"""Activation checkpointing must change memory use only, never the maths."""
import copy

import pytest
import torch

from ddpm.nn import UNet

torch.set_num_threads(1)


@pytest.mark.parametrize("dims", [2, 3])
def test_checkpointing_gives_the_same_gradients(dims):
    torch.manual_seed(0)
    plain = UNet(dims=dims, image_size=8, dim=8, channel_mults=(1, 2), res_blocks=2, attn_res=[4],
                 num_head_channels=4, linear_attn=True, self_condition=True, dropout=0.1)
    ckpt = copy.deepcopy(plain)
    ckpt.checkpointing = True
    x = torch.randn(2, 1, *([8] * dims))
    sc = torch.randn_like(x)
    t = torch.tensor([3, 700])

    grads = []
    for model in (plain, ckpt):
        torch.manual_seed(123)  # same dropout masks in both runs (checkpoint restores the RNG)
        loss = (model(x, t, sc) - x).square().mean()
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})

    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-5, msg=name)
    # a gradient that is all zeros would make the comparison meaningless
    assert grads[0]["init_conv.weight"].abs().sum() > 0


def test_checkpointing_really_recomputes():
    """With checkpointing on, the blocks run a second time in the backward pass."""
    model = UNet(dims=2, image_size=8, dim=8, channel_mults=(1, 2), num_head_channels=4, checkpointing=True)
    calls = []
    # the first conv of the first block: non-reentrant checkpointing stops recomputing a segment
    # as soon as it has what backward needs, so a hook on the whole block may not fire again
    model.down[0][0].res.conv1.register_forward_hook(lambda *a: calls.append(1))
    out = model(torch.randn(1, 1, 8, 8), torch.tensor([1]))
    assert len(calls) == 1
    out.sum().backward()
    assert len(calls) == 2
    with torch.no_grad():  # no recomputation (nor checkpoint overhead) when not training
        model(torch.randn(1, 1, 8, 8), torch.tensor([1]))
    assert len(calls) == 3
