"""The plain-op reference for the fused norm node: F.group_norm -> (1 + scale), + shift -> SiLU.

Shared by test_norm_act.py (the PyTorch-op node) and test_native.py (the C++ kernel)."""
import torch.nn.functional as F


def reference_norm_act(x, groups, weight, bias, scale, shift, act):
    h = F.group_norm(x, groups, weight, bias, 1e-5)
    per_channel = (1,) * (x.dim() - 2)
    if scale is not None:
        h = h * (1 + scale.view(*scale.shape, *per_channel))
    if shift is not None:
        h = h + shift.view(*shift.shape, *per_channel)
    return F.silu(h) if act else h
