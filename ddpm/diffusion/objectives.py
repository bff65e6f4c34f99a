"""What the network predicts (eps, x0 or v), the conversions between them, and the loss.

With ``a = sqrt(alpha_bar_t)`` and ``s = sqrt(1 - alpha_bar_t)``:
``x_t = a*x0 + s*eps`` and ``v = a*eps - s*x0`` (Salimans & Ho 2022), hence
``x0 = a*x_t - s*v`` and ``eps = s*x_t + a*v``. ``a`` and ``s`` arrive already broadcast to the
shape of ``x_t`` (B, 1, 1, ...) so the same code serves 2D and 3D.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

OBJECTIVES = ("pred_noise", "pred_x0", "pred_v")
LOSS_TYPES = ("l1", "l2", "huber")


def check_objective(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: {objective!r} is not known; allowed values: {', '.join(OBJECTIVES)}")
    return objective


def check_loss_type(loss_type: str) -> str:
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type: {loss_type!r} is not known; allowed values: {', '.join(LOSS_TYPES)}")
    return loss_type


def x0_from_eps(x_t: torch.Tensor, eps: torch.Tensor, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return (x_t - s * eps) / a


def eps_from_x0(x_t: torch.Tensor, x0: torch.Tensor, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return (x_t - a * x0) / s


def v_from(x0: torch.Tensor, eps: torch.Tensor, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return a * eps - s * x0


def x0_from_v(x_t: torch.Tensor, v: torch.Tensor, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return a * x_t - s * v


def eps_from_v(x_t: torch.Tensor, v: torch.Tensor, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return s * x_t + a * v


def to_eps_x0(objective: str, out: torch.Tensor, x_t: torch.Tensor, a: torch.Tensor, s: torch.Tensor,
              clip_x0: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(eps, x0) from the network output. With ``clip_x0`` the x0 estimate is clamped to the data
    range [-1, 1] and eps is recomputed from the clamped x0, so both stay one consistent pair."""
    if objective == "pred_noise":
        eps, x0 = out, x0_from_eps(x_t, out, a, s)
    elif objective == "pred_x0":
        eps, x0 = eps_from_x0(x_t, out, a, s), out
    else:
        eps, x0 = eps_from_v(x_t, out, a, s), x0_from_v(x_t, out, a, s)
    if clip_x0:
        x0 = x0.clamp(-1.0, 1.0)
        eps = eps_from_x0(x_t, x0, a, s)
    return eps, x0


def target_for(objective: str, x0: torch.Tensor, eps: torch.Tensor, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    if objective == "pred_noise":
        return eps
    if objective == "pred_x0":
        return x0
    return v_from(x0, eps, a, s)


def elementwise_loss(loss_type: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Unreduced loss, always in float32 (bf16 squares of small errors lose most of their bits)."""
    pred, target = pred.float(), target.float()
    if loss_type == "l1":
        return (pred - target).abs()
    if loss_type == "l2":
        return (pred - target) ** 2
    return F.smooth_l1_loss(pred, target, reduction="none", beta=1.0)


def min_snr_weight(objective: str, snr: torch.Tensor, gamma: Optional[float]) -> torch.Tensor:
    """Per-sample loss weight of Min-SNR-gamma (Hang et al. 2023), for each objective.

    The paper weights the x0-space squared error by ``min(snr, gamma)``. For the same prediction,
    the eps error is ``snr`` times the x0 error and the v error ``snr + 1`` times it, so the weights
    that give every objective the same effective x0 weight ``min(snr, gamma)`` are:
    eps -> ``min(snr, gamma) / snr``, x0 -> ``min(snr, gamma)``, v -> ``min(snr, gamma) / (snr + 1)``.
    Without gamma every weight is 1.
    """
    snr = snr.double()
    if gamma is None:
        return torch.ones_like(snr, dtype=torch.float32)
    clipped = torch.minimum(snr, torch.full_like(snr, float(gamma)))
    if objective == "pred_noise":
        # min(snr, g)/snr written as min(1, g/snr) so that snr -> 0 gives 1, not 0/0
        w = torch.clamp(gamma / snr, max=1.0)
    elif objective == "pred_x0":
        w = clipped
    else:
        w = clipped / (snr + 1.0)
    return w.float()
