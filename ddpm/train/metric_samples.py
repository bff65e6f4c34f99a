"""The preview samples of a metric step, drawn by every process of the job together.

Sample i comes from its own generator, seeded from the run's seed and i (``sample_seed``), so
the images do not depend on how many processes draw them: rank r draws samples r, r + N, ...
(N processes) and rank 0 gathers them in index order, then writes the files and the metrics.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

import torch

from . import distributed as dd

_SPREAD = 0x9E3779B97F4A7C15  # the 64-bit golden-ratio constant: spreads consecutive seeds apart


def sample_seed(seed: int, index: int) -> int:
    """The generator seed of sample ``index`` (sample 0 keeps ``seed`` itself)."""
    return (seed + index * _SPREAD) % 2**63


@dataclass(frozen=True)
class DrawnSamples:
    x01: torch.Tensor  # (n, C, *spatial) in [0, 1], float32, on the CPU, in index order
    seconds: float     # drawing and gathering, as rank 0 saw it


@torch.no_grad()
def draw_metric_samples(model: Any, n: int, dist: dd.Dist, seed: int, sampler: str, steps: int,
                        autocast_dtype: Optional[torch.dtype]) -> Optional[DrawnSamples]:
    """This rank's share of ``n`` samples of ``model`` (eval mode while drawing), gathered: the
    samples on rank 0, None on the others. Every rank of the job must call it (a collective)."""
    t0 = time.perf_counter()
    was = model.training
    model.eval()
    mine: list[tuple[int, torch.Tensor]] = []
    try:
        for i in range(dist.rank, n, dist.world_size):
            gen = torch.Generator(device=model.device).manual_seed(sample_seed(seed, i))
            x = model.sample(1, sampler=sampler, steps=steps, generator=gen, autocast_dtype=autocast_dtype)
            mine.append((i, ((x.float() + 1) / 2).cpu()))
    finally:
        model.train(was)
    everyone = dd.gather(mine, dist)
    if not dist.is_main:
        return None
    x01 = torch.cat([x for _, x in sorted(everyone, key=lambda item: item[0])])
    return DrawnSamples(x01, time.perf_counter() - t0)
