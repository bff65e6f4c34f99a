"""Samplers for 2D and 3D: ancestral DDPM (respaced when fewer steps), DDIM (any steps, eta),
and DPM-Solver++(2M) (Lu et al. 2022) in its data-prediction form.

All of them: run the network through ``ddpm.model_predictions`` (so any denoiser with the U-Net
call signature works), clip the x0 estimate to [-1, 1] when ``clip_x0``, feed the previous x0
estimate back as the self-condition at every step (zeros at the first), keep the state in
float32 on the model's device, and optionally run the network under autocast (``autocast_dtype``,
e.g. torch.bfloat16). The schedule coefficients are taken from the float64 buffers as Python floats.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Optional

import torch

from ddpm.config import DEFAULT_SAMPLER, Sampler

DEFAULT_STEPS = {Sampler.ddim: 50, Sampler.dpmpp2m: 20}
LAMBDA_FLOOR = -5.1  # half-log-SNR where the log-SNR grid starts at the latest (see logsnr_timesteps)


def spaced_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """``steps`` distinct training timesteps, from the noisiest (T-1) down to 0, evenly spaced."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps: must be in 1..{num_timesteps} (the training timesteps), got {steps}")
    if steps == 1:
        return [num_timesteps - 1]
    # spacing (T-1)/(steps-1) >= 1, so rounding keeps them distinct
    return [int(round(x)) for x in torch.linspace(num_timesteps - 1, 0, steps, dtype=torch.float64).tolist()]


def logsnr_timesteps(alphas_cumprod: torch.Tensor, steps: int) -> list[int]:
    """``steps`` distinct integer timesteps, T-1 down to 0, evenly spaced in half-log-SNR lambda.

    Each target lambda goes to the nearest training timestep; where the schedule is too coarse for
    that (near t=0 lambda moves fast), ties are pushed apart by one step so the count stays exact.
    """
    T = alphas_cumprod.shape[0]
    if not 1 <= steps <= T:
        raise ValueError(f"steps: must be in 1..{T} (the training timesteps), got {steps}")
    if steps == 1:
        return [T - 1]
    ac = alphas_cumprod.double().cpu()
    lam = 0.5 * (torch.log(ac) - torch.log1p(-ac))  # increasing as t decreases
    # Below lambda ~ -5 (alpha/sigma < 0.007) x_t is noise for data in [-1, 1]; schedules whose
    # last betas are clipped (cosine) reach lambda ~ -10 there, and an even grid would spend a
    # third of its steps on the last few timesteps. Start the grid at the floor instead.
    lo = max(float(lam[-1]), LAMBDA_FLOOR)
    targets = torch.linspace(lo, float(lam[0]), steps, dtype=torch.float64)
    idx = [int(torch.argmin((lam - v).abs())) for v in targets.tolist()]
    # keep entry i where steps-1-i smaller and i larger distinct values still fit, then
    # make the list strictly decreasing from the t=0 end (stays inside those bounds)
    idx = [min(max(v, steps - 1 - i), T - 1 - i) for i, v in enumerate(idx)]
    idx[0], idx[-1] = T - 1, 0
    for i in range(steps - 2, -1, -1):
        idx[i] = max(idx[i], idx[i + 1] + 1)
    return idx


def _autocast(device: torch.device, dtype: Optional[torch.dtype]):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


class _Denoiser:
    """Calls the model at one timestep for the whole batch, tracking the self-condition."""

    def __init__(self, ddpm, n: int, clip_x0: bool, autocast_dtype: Optional[torch.dtype]):
        self.ddpm, self.n, self.clip_x0 = ddpm, n, clip_x0
        self.device, self.dtype = ddpm.device, ddpm.model_dtype
        # a model cast to half precision still gets float32 inputs from some of its own parts
        # (e.g. a sinusoidal time embedding); autocast in its dtype makes every op agree
        if autocast_dtype is None and self.dtype in (torch.bfloat16, torch.float16):
            autocast_dtype = self.dtype
        self.autocast_dtype = autocast_dtype
        self.prev_x0: Optional[torch.Tensor] = None

    def __call__(self, x: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        tt = torch.full((self.n,), t, device=self.device, dtype=torch.long)
        cond = None
        if self.ddpm.self_condition:
            cond = torch.zeros_like(x) if self.prev_x0 is None else self.prev_x0
            cond = cond.to(self.dtype)
        with _autocast(self.device, self.autocast_dtype):
            eps, x0 = self.ddpm.model_predictions(x.to(self.dtype), tt, cond, clip_x0=self.clip_x0)
        eps, x0 = eps.float(), x0.float()
        self.prev_x0 = x0
        return eps, x0


def _noise(shape: tuple, generator: Optional[torch.Generator], device: torch.device) -> torch.Tensor:
    gen_dev = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_dev, dtype=torch.float32).to(device)


def ancestral_step(x: torch.Tensor, x0: torch.Tensor, ab: float, ab_prev: float,
                   noise: torch.Tensor) -> torch.Tensor:
    """One draw from the posterior q(x_prev | x_t, x0) of the (respaced) chain whose beta between
    the two kept timesteps is ``1 - ab / ab_prev``."""
    beta = 1.0 - ab / ab_prev
    c0 = math.sqrt(ab_prev) * beta / (1.0 - ab)
    ct = math.sqrt(1.0 - beta) * (1.0 - ab_prev) / (1.0 - ab)
    var = beta * (1.0 - ab_prev) / (1.0 - ab)
    return c0 * x0 + ct * x + math.sqrt(var) * noise


def ddim_step(eps: torch.Tensor, x0: torch.Tensor, ab: float, ab_prev: float, eta: float,
              noise: Optional[torch.Tensor]) -> torch.Tensor:
    """DDIM update (Song et al. 2021, eq. 12); eta=1 gives the ancestral posterior's variance."""
    sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
    x = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma ** 2, 0.0)) * eps
    return x + sigma * noise if sigma > 0 else x


def ddpm_ancestral(ddpm, x: torch.Tensor, denoise: _Denoiser, times: list[int],
                   generator: Optional[torch.Generator], progress: Optional[Callable]) -> torch.Tensor:
    """Ancestral sampling on the (possibly respaced) chain: the betas between kept timesteps are
    ``1 - alpha_bar[t_i] / alpha_bar[t_prev]`` so the marginals stay those of training."""
    ac = ddpm.alphas_cumprod.double().cpu()
    for i, t in enumerate(times):
        _, x0 = denoise(x, t)
        if i == len(times) - 1:
            x = x0
        else:
            x = ancestral_step(x, x0, float(ac[t]), float(ac[times[i + 1]]),
                               _noise(x.shape, generator, x.device))
        if progress is not None:
            progress(i + 1, len(times))
    return x


def ddim(ddpm, x: torch.Tensor, denoise: _Denoiser, times: list[int], eta: float,
         generator: Optional[torch.Generator], progress: Optional[Callable]) -> torch.Tensor:
    """DDIM (Song et al. 2021); eta=0 deterministic, eta=1 with all steps = ancestral DDPM."""
    ac = ddpm.alphas_cumprod.double().cpu()
    for i, t in enumerate(times):
        eps, x0 = denoise(x, t)
        if i == len(times) - 1:
            x = x0
        else:
            noise = _noise(x.shape, generator, x.device) if eta > 0 else None
            x = ddim_step(eps, x0, float(ac[t]), float(ac[times[i + 1]]), eta, noise)
        if progress is not None:
            progress(i + 1, len(times))
    return x


def dpmpp_2m(ddpm, x: torch.Tensor, denoise: _Denoiser, times: list[int],
             progress: Optional[Callable]) -> torch.Tensor:
    """DPM-Solver++(2M): multistep second order in lambda = log(alpha/sigma) on the x0 estimate.

    x_{i} = (sigma_i/sigma_{i-1}) x_{i-1} - alpha_i (e^{-h_i} - 1) D_i, with
    D_i = (1 + 1/(2r)) x0_{i-1} - 1/(2r) x0_{i-2}, r = h_{i-1}/h_i (first step: D_i = x0_{i-1}).
    The last network call is at t=0 and its x0 estimate is the sample (the step to sigma=0).
    """
    ac = ddpm.alphas_cumprod.double().cpu()
    alpha = ac.sqrt()
    sigma = (1 - ac).sqrt()
    lam = torch.log(alpha) - torch.log(sigma)
    prev_x0: Optional[torch.Tensor] = None
    h_prev: Optional[float] = None
    for i, t in enumerate(times):
        _, x0 = denoise(x, t)
        if i == len(times) - 1:
            x = x0
        else:
            s = times[i + 1]
            h = float(lam[s] - lam[t])
            if prev_x0 is None:
                d = x0
            else:
                r = h_prev / h
                d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * prev_x0
            x = float(sigma[s] / sigma[t]) * x - float(alpha[s]) * math.expm1(-h) * d
            prev_x0, h_prev = x0, h
        if progress is not None:
            progress(i + 1, len(times))
    return x


def sample(ddpm, n: int, sampler: str = DEFAULT_SAMPLER, steps: Optional[int] = None, eta: float = 0.0,
           generator: Optional[torch.Generator] = None, clip_x0: bool = True,
           progress: Optional[Callable[[int, int], None]] = None,
           autocast_dtype: Optional[torch.dtype] = None, spacing: Optional[str] = None) -> torch.Tensor:
    """Draw ``n`` samples (n, C, *spatial) in [-1, 1] with the named sampler.

    Default steps: ddpm -> ddpm.sampling_timesteps (all training steps unless the config's
    beta_schedule.test says fewer), ddim -> 50, dpmpp2m -> 20. ``spacing``: "time" (even in t)
    or "logsnr" (even in log-SNR); defaults: time for ddpm/ddim, logsnr for dpmpp2m.
    """
    if sampler not in set(Sampler):
        raise ValueError(f"sampler: {sampler!r} is not known; allowed values: {', '.join(Sampler)}")
    sampler = Sampler(sampler)
    if int(n) != n or n < 1:
        raise ValueError(f"n: must be a positive integer, got {n!r}")
    if eta < 0:
        raise ValueError(f"eta: must be >= 0, got {eta!r}")
    T = ddpm.num_timesteps
    if steps is None:
        steps = ddpm.sampling_timesteps if sampler == Sampler.ddpm else min(DEFAULT_STEPS[sampler], T)
    spacing = spacing or ("logsnr" if sampler == Sampler.dpmpp2m else "time")
    if spacing not in ("time", "logsnr"):
        raise ValueError(f"spacing: {spacing!r} is not known; allowed values: time, logsnr")
    times = (logsnr_timesteps(ddpm.alphas_cumprod, steps) if spacing == "logsnr"
             else spaced_timesteps(T, steps))
    was_training = ddpm.training
    ddpm.eval()
    try:
        with torch.no_grad():
            shape = (int(n), ddpm.channels, *([ddpm.image_size] * ddpm.dims))
            x = _noise(shape, generator, ddpm.device)
            denoise = _Denoiser(ddpm, int(n), clip_x0, autocast_dtype)
            if sampler == Sampler.ddpm:
                x = ddpm_ancestral(ddpm, x, denoise, times, generator, progress)
            elif sampler == Sampler.ddim:
                x = ddim(ddpm, x, denoise, times, eta, generator, progress)
            else:
                x = dpmpp_2m(ddpm, x, denoise, times, progress)
    finally:
        ddpm.train(was_training)
    return x.clamp(-1.0, 1.0)
