"""An exact denoiser for Gaussian-mixture data, with the U-Net call signature.

For data ``x0 ~ sum_k pi_k N(mu_k, std_k^2 I)`` (every pixel of a component shares one std),
``x_t = a x0 + s eps`` is again a mixture, and ``E[x0 | x_t]`` is the responsibility-weighted
sum of per-component Wiener estimates. The module returns the eps, x0 or v prediction of that
optimal denoiser, so samplers can be checked against the true data distribution with no training.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn


class GaussianMixtureDenoiser(nn.Module):
    def __init__(self, alphas_cumprod: torch.Tensor, means: torch.Tensor, stds: Sequence[float],
                 weights: Sequence[float], objective: str = "pred_noise") -> None:
        """means: (K, *sample_shape) component means; stds, weights: (K,)."""
        super().__init__()
        self.register_buffer("ac", alphas_cumprod.double().clone())
        self.register_buffer("means", means.double().clone())
        self.register_buffer("stds", torch.as_tensor(stds, dtype=torch.float64))
        w = torch.as_tensor(weights, dtype=torch.float64)
        self.register_buffer("log_w", torch.log(w / w.sum()))
        self.objective = objective
        self.self_condition = False

    def sample_data(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Exact draws from the data distribution, float64 (n, *sample_shape)."""
        k = torch.multinomial(self.log_w.exp(), n, replacement=True, generator=generator)
        z = torch.randn((n, *self.means.shape[1:]), generator=generator, dtype=torch.float64)
        return self.means[k] + self.stds[k].reshape(-1, *([1] * (z.dim() - 1))) * z

    def posterior_mean(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x = x_t.double().flatten(1)                                   # (B, d)
        ab = self.ac[t.long()].unsqueeze(1)                           # (B, 1)
        a, s2 = ab.sqrt(), 1 - ab
        mu = self.means.flatten(1)                                    # (K, d)
        var = a * a * self.stds.pow(2).unsqueeze(0) + s2              # (B, K) per-pixel variance of x_t
        d = x.shape[1]
        diff2 = ((x.unsqueeze(1) - a.unsqueeze(2) * mu.unsqueeze(0)) ** 2).sum(-1)  # (B, K)
        logp = self.log_w - 0.5 * diff2 / var - 0.5 * d * torch.log(var)
        resp = torch.softmax(logp, dim=1)                             # (B, K)
        gain = a * self.stds.pow(2).unsqueeze(0) / var                # (B, K)
        comp = mu.unsqueeze(0) + gain.unsqueeze(2) * (x.unsqueeze(1) - a.unsqueeze(2) * mu.unsqueeze(0))
        return (resp.unsqueeze(2) * comp).sum(1).reshape(x_t.shape)

    def forward(self, x: torch.Tensor, t: torch.Tensor, x_self_cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        x0 = self.posterior_mean(x, t)
        ab = self.ac[t.long()].reshape(-1, *([1] * (x.dim() - 1)))
        a, s = ab.sqrt(), (1 - ab).sqrt()
        xd = x.double()
        if self.objective == "pred_x0":
            out = x0
        elif self.objective == "pred_v":
            eps = (xd - a * x0) / s
            out = a * eps - s * x0
        else:
            out = (xd - a * x0) / s
        return out.to(x.dtype)
