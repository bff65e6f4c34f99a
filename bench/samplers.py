"""Sampler quality against an exact data distribution (no training involved).

Data: a Gaussian mixture on 1x4x4 "images" (16 dims, 3 components with different spreads);
the denoiser is the exact posterior mean of that mixture (ddpm.diffusion.analytic), so every
difference from the data comes from the sampler's discretisation. Distances between N sampler
draws and N exact data draws: sliced Wasserstein-1 (128 fixed projections), the error of the
mean (L2), of the covariance (Frobenius) and of the component weights (total variation, each
draw assigned to its most likely component). The "data vs data" row is the noise floor of N draws.
A second table gives the solvers' error on the probability-flow ODE itself: mean |x - x_ref| from the
same initial noise, against DDIM (eta 0) over all 1000 steps; first order halves it per doubling
of steps, second order quarters it.

    PYTHONPATH=. .venv/bin/python bench/samplers.py [--n 4000] [--schedules linear,cosine]
"""
from __future__ import annotations

import argparse
import time

import torch

from ddpm.diffusion.analytic import GaussianMixtureDenoiser
from ddpm.diffusion.gaussian import DDPM
from ddpm.diffusion.samplers import sample

CASES = [  # (label, sampler, steps, eta, spacing)
    ("ddpm-1000", "ddpm", 1000, 0.0, None),
    ("ddim-100 (time)", "ddim", 100, 0.0, "time"),
    ("ddim-50 (time)", "ddim", 50, 0.0, "time"),
    ("ddim-25 (time)", "ddim", 25, 0.0, "time"),
    ("ddim-100 (logsnr)", "ddim", 100, 0.0, "logsnr"),
    ("ddim-50 (logsnr)", "ddim", 50, 0.0, "logsnr"),
    ("ddim-25 (logsnr)", "ddim", 25, 0.0, "logsnr"),
    ("dpmpp2m-25 (logsnr)", "dpmpp2m", 25, 0.0, "logsnr"),
    ("dpmpp2m-20 (logsnr)", "dpmpp2m", 20, 0.0, "logsnr"),
    ("dpmpp2m-25 (time)", "dpmpp2m", 25, 0.0, "time"),
    ("dpmpp2m-20 (time)", "dpmpp2m", 20, 0.0, "time"),
    ("dpmpp2m-10 (logsnr)", "dpmpp2m", 10, 0.0, "logsnr"),
]


def mixture(ac: torch.Tensor) -> GaussianMixtureDenoiser:
    g = torch.Generator().manual_seed(1)
    means = (torch.rand(3, 1, 4, 4, generator=g, dtype=torch.float64) * 1.2 - 0.6)
    return GaussianMixtureDenoiser(ac, means, stds=[0.04, 0.08, 0.15], weights=[0.5, 0.3, 0.2])


def distances(x: torch.Tensor, y: torch.Tensor, gm: GaussianMixtureDenoiser) -> dict:
    x, y = x.double().flatten(1), y.double().flatten(1)
    proj = torch.randn(x.shape[1], 128, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    proj /= proj.norm(dim=0, keepdim=True)
    sw = ((x @ proj).sort(0).values - (y @ proj).sort(0).values).abs().mean().item()
    mean_err = (x.mean(0) - y.mean(0)).norm().item()
    cov_err = (torch.cov(x.T) - torch.cov(y.T)).norm().item()

    def weights(z: torch.Tensor) -> torch.Tensor:
        mu = gm.means.flatten(1)
        var = gm.stds.pow(2)
        logp = gm.log_w - 0.5 * torch.cdist(z, mu) ** 2 / var - 0.5 * z.shape[1] * torch.log(var)
        return torch.bincount(logp.argmax(1), minlength=mu.shape[0]).double() / z.shape[0]

    tv = 0.5 * (weights(x) - weights(y)).abs().sum().item()
    return {"sw": sw, "mean": mean_err, "cov": cov_err, "weights_tv": tv}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--schedules", default="linear,cosine")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for schedule in args.schedules.split(","):
        base = DDPM(image_size=4, channels=1, unet=torch.nn.Identity(), schedule=schedule, n_timestep=1000)
        gm = mixture(base.alphas_cumprod)
        ddpm = DDPM(image_size=4, channels=1, unet=gm, schedule=schedule, n_timestep=1000)
        data = gm.sample_data(args.n, torch.Generator().manual_seed(2))
        floor = distances(gm.sample_data(args.n, torch.Generator().manual_seed(3)), data, gm)
        print(f"\nschedule={schedule} T=1000, N={args.n}, 16-dim 3-component Gaussian mixture")
        print(f"| {'sampler':<20} | NFE  | sliced W1 | mean err | cov err | weights TV | s |")
        print("|" + "|".join(["-" * 22, "-" * 6, "-" * 11, "-" * 10, "-" * 9, "-" * 12, "---"]) + "|")
        print(f"| {'data vs data':<20} | -    | {floor['sw']:.4f}    | {floor['mean']:.4f}   | "
              f"{floor['cov']:.4f}  | {floor['weights_tv']:.4f}     | - |")
        for label, sampler, steps, eta, spacing in CASES:
            t0 = time.time()
            x = sample(ddpm, args.n, sampler=sampler, steps=steps, eta=eta,
                       generator=torch.Generator().manual_seed(4), spacing=spacing)
            d = distances(x, data, gm)
            print(f"| {label:<20} | {steps:<4} | {d['sw']:.4f}    | {d['mean']:.4f}   | {d['cov']:.4f}  | "
                  f"{d['weights_tv']:.4f}     | {time.time() - t0:.0f} |", flush=True)
        ode_errors(ddpm)


def ode_errors(ddpm: DDPM, n: int = 2000) -> None:
    def run(sampler: str, steps: int, spacing: str) -> torch.Tensor:
        return sample(ddpm, n, sampler=sampler, steps=steps, spacing=spacing, clip_x0=False,
                      generator=torch.Generator().manual_seed(5))

    ref = run("ddim", 1000, "time")
    print(f"\nODE error, mean |x - x_ref| over {n} draws (x_ref: ddim-1000 from the same noise)")
    print("| solver (grid)        | 10 steps | 20 steps | 40 steps |")
    print("|----------------------|----------|----------|----------|")
    for sampler, spacing in (("ddim", "time"), ("ddim", "logsnr"), ("dpmpp2m", "time"), ("dpmpp2m", "logsnr")):
        errs = [(run(sampler, k, spacing) - ref).abs().mean().item() for k in (10, 20, 40)]
        print(f"| {sampler + ' (' + spacing + ')':<20} | " + " | ".join(f"{e:.5f} " for e in errs) + "|",
              flush=True)


if __name__ == "__main__":
    main()
