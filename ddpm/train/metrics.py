"""Held-out metrics of a training run and the metrics.jsonl log.

- Denoising loss on held-out items at a fixed grid of timesteps (one per bin, at the bin's
  centre) with fixed noise: the same inputs at every metric step, so the curve moves only
  because the model does.
- Intensity statistics of generated samples against the held-out data: total-variation
  distance between 64-bin histograms on [0, 1] (0 = same, 1 = disjoint) and the 1-D
  Wasserstein distance between the intensity distributions.
"""
from __future__ import annotations

import json
import math
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch.utils.data import Dataset

HIST_BINS = 64


class HeldOut:
    """Fixed held-out inputs (items, timesteps, noise), built once per run."""

    def __init__(self, dataset: Dataset, num_timesteps: int, seed: int, max_items: int = 16,
                 bins: int = 8) -> None:
        n = min(len(dataset), max_items)  # type: ignore[arg-type]
        if n == 0:
            raise ValueError("no held-out items")
        self.x0 = torch.stack([dataset[i] for i in range(n)]).float()  # [-1, 1]
        bins = min(bins, num_timesteps)
        edges = [round(i * num_timesteps / bins) for i in range(bins + 1)]
        self.bins = [(edges[i], edges[i + 1] - 1) for i in range(bins)]
        self.t_grid = torch.tensor([(lo + hi) // 2 for lo, hi in self.bins], dtype=torch.long)
        self.seed = seed

    def noise(self, b: int) -> torch.Tensor:
        # regenerated per call rather than kept: for 3D it would be bins x items x D*H*W floats
        g = torch.Generator().manual_seed(self.seed * 1009 + 7919 + b)
        return torch.randn(tuple(self.x0.shape), generator=g)

    @torch.no_grad()
    def denoising_loss(self, model: Any, batch_size: int, autocast: Callable[[], Any] = nullcontext
                       ) -> dict[str, float]:
        """``val_loss`` (mean over bins) and ``val_loss_t{lo}_{hi}`` per bin."""
        was_training = model.training
        model.eval()
        dev = model.device
        out: dict[str, float] = {}
        try:
            per_bin = []
            for b, t in enumerate(self.t_grid.tolist()):
                losses = []
                noise_b = self.noise(b)
                for i in range(0, self.x0.shape[0], batch_size):
                    x0 = self.x0[i:i + batch_size].to(dev)
                    noise = noise_b[i:i + batch_size].to(dev)
                    tt = torch.full((x0.shape[0],), t, dtype=torch.long, device=dev)
                    with autocast():
                        losses.append(model.p_losses(x0, tt, noise, reduction="none").float().cpu())
                value = torch.cat(losses).mean().item()
                lo, hi = self.bins[b]
                out[f"val_loss_t{lo}_{hi}"] = value
                per_bin.append(value)
            out["val_loss"] = sum(per_bin) / len(per_bin)
        finally:
            model.train(was_training)
        return out

    def data01(self) -> torch.Tensor:
        return (self.x0 + 1) / 2


def intensity_stats(samples01: torch.Tensor, data01: torch.Tensor) -> dict[str, float]:
    """Histogram TV distance, Wasserstein-1, and mean/std of samples vs data (both in [0, 1])."""
    s = samples01.detach().float().flatten().clamp(0, 1).cpu()
    d = data01.detach().float().flatten().clamp(0, 1).cpu()
    hs = torch.histc(s, bins=HIST_BINS, min=0.0, max=1.0)
    hd = torch.histc(d, bins=HIST_BINS, min=0.0, max=1.0)
    tv = 0.5 * (hs / hs.sum() - hd / hd.sum()).abs().sum().item()
    q = torch.linspace(0, 1, 257)
    w1 = (torch.quantile(_subsample(s), q) - torch.quantile(_subsample(d), q)).abs().mean().item()
    return {"hist_distance": tv, "intensity_w1": w1, "sample_mean": s.mean().item(),
            "sample_std": s.std().item(), "data_mean": d.mean().item(), "data_std": d.std().item()}


def json_safe(record: dict[str, Any]) -> dict[str, Any]:
    """Non-finite floats become None: metrics.jsonl and the worker's events stay strict JSON."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


def _subsample(x: torch.Tensor, limit: int = 1_000_000) -> torch.Tensor:
    # torch.quantile refuses inputs above 16M elements; an even stride keeps the distribution
    return x[:: max(1, x.numel() // limit)]


class MetricsLog:
    """metrics.jsonl: one JSON object per metric step, appended and fsynced."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        rows = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a crash mid-append
        return rows

    def truncate_after(self, step: int, write_text: Optional[Callable[[Path, str], None]] = None) -> None:
        """Drop records written after ``step`` (by a run that died before its next checkpoint),
        so a resumed run does not log those steps twice."""
        if not self.path.is_file():
            return
        rows = [r for r in self.read() if int(r.get("step", 0)) <= step]
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)
        if write_text is None:
            self.path.write_text(text, encoding="utf-8")
        else:
            write_text(self.path, text)


def format_metrics_line(rec: dict[str, Any], total: int) -> str:
    """One summary line of a metric step (CLI and train.log)."""
    def num(key: str, fmt: str) -> str:
        v = rec.get(key)
        return "n/a" if v is None else format(v, fmt)

    parts = [f"step {rec['step']}/{total}", f"loss {num('train_loss', '.4f')}"]
    if "val_loss" in rec:
        parts.append(f"val {num('val_loss', '.4f')}")
    parts.append(f"lr {num('lr', '.2e')}")
    parts.append(f"grad {num('grad_norm', '.3f')}")
    if "hist_distance" in rec:
        parts.append(f"hist {num('hist_distance', '.3f')}")
    if rec.get("skipped_steps"):
        parts.append(f"skipped {rec['skipped_steps']}")
    if rec.get("it_s") is not None:
        parts.append(f"{rec['it_s']:.2f} it/s")
    return " | ".join(parts)
