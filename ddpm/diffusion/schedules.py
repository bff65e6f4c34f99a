"""Beta schedules: linear, cosine (Nichol & Dhariwal 2021), sigmoid, quadratic.

Every schedule is built in float64 (the products of a thousand alphas lose digits in float32,
and log-SNR steps of the fast solver need them) and clipped to (0, 0.999]: a beta of 1 would
make alpha_bar exactly 0 and the last step singular.
"""
from __future__ import annotations

import math

import torch

SCHEDULES = ("linear", "cosine", "sigmoid", "quadratic")
MAX_BETA = 0.999
MIN_BETA = 1e-12


def make_betas(schedule: str, n_timestep: int = 1000, linear_start: float = 1e-4,
               linear_end: float = 0.02, cosine_s: float = 8e-3) -> torch.Tensor:
    """Betas of a named schedule as a float64 tensor of length ``n_timestep``.

    - linear: ``linspace(linear_start, linear_end)``
    - quadratic: ``linspace(sqrt(linear_start), sqrt(linear_end)) ** 2``
    - sigmoid: ``sigmoid(linspace(-6, 6)) * (linear_end - linear_start) + linear_start``
    - cosine: ``alpha_bar(t) = cos(((t/T) + s) / (1 + s) * pi/2) ** 2`` (ignores linear_*),
      betas ``1 - alpha_bar(t+1)/alpha_bar(t)``.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: {schedule!r} is not known; allowed values: {', '.join(SCHEDULES)}")
    if int(n_timestep) != n_timestep or n_timestep < 2:
        raise ValueError(f"n_timestep: must be an integer >= 2, got {n_timestep!r}")
    n = int(n_timestep)
    if schedule != "cosine" and not (0.0 < linear_start < linear_end < 1.0):
        raise ValueError(f"linear_start/linear_end: need 0 < linear_start < linear_end < 1, "
                         f"got {linear_start!r}, {linear_end!r}")
    f64 = torch.float64
    if schedule == "linear":
        betas = torch.linspace(linear_start, linear_end, n, dtype=f64)
    elif schedule == "quadratic":
        betas = torch.linspace(math.sqrt(linear_start), math.sqrt(linear_end), n, dtype=f64) ** 2
    elif schedule == "sigmoid":
        betas = torch.sigmoid(torch.linspace(-6.0, 6.0, n, dtype=f64)) * (linear_end - linear_start) + linear_start
    else:
        steps = torch.arange(n + 1, dtype=f64) / n
        alpha_bar = torch.cos((steps + cosine_s) / (1 + cosine_s) * math.pi / 2) ** 2
        betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(MIN_BETA, MAX_BETA)


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t = prod_{s<=t} (1 - beta_s), in the dtype of ``betas``."""
    return torch.cumprod(1.0 - betas, dim=0)
