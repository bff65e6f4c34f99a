"""Tiny real data sets and configs for the training / sampling / CLI tests."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Optional

import nibabel as nib
import numpy as np
import torch
from PIL import Image

from ddpm.config import TrainConfig, load_config
from ddpm.train import ProgressInfo, TrainCallbacks, Trainer

torch.set_num_threads(1)  # 2 shared cores on this machine


def write_images(folder: Path, n: int = 8, size: int = 16) -> Path:
    """Grey PNGs of a bright bar at varying places (a learnable, deterministic data set)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        a = np.full((size, size), 20, np.uint8)
        a[size // 4: 3 * size // 4, i % (size // 2): i % (size // 2) + size // 4] = 220
        Image.fromarray(a).save(folder / f"img{i:02d}.png")
    return folder


def write_volumes(folder: Path, n: int = 4, shape: tuple[int, int, int] = (16, 16, 8),
                  spacing: tuple[float, float, float] = (1.0, 1.0, 2.0)) -> Path:
    """NIfTI volumes with an anisotropic spacing and a bright box."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        a = np.zeros(shape, np.float32)
        a[4:12, 2 + i:10 + i, 2:6] = 100.0 + 10 * i
        nib.save(nib.Nifti1Image(a, np.diag(list(spacing) + [1.0])), str(folder / f"vol{i}.nii.gz"))
    return folder


def merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def tiny_cfg_dict(data: Path | str, exp: Path | str, is_3d: bool = False, **extra: Any) -> dict:
    cfg = {
        "gpu": -1, "experiment_path": str(exp), "is_3d": is_3d, "seed": 3,
        "model": {"unet": {"dim": 8, "channel_mults": [1, 2], "res_blocks": 1, "num_head_channels": 8},
                  "beta_schedule": {"train": {"schedule": "cosine", "n_timestep": 50}}, "lr": 1e-3, "iterations": 6,
                  "freq_metrics": 100, "freq_checkpoint": 100, "metric_samples": 0, "metric_steps": 4},
        "dataset": {"name": "volume3d" if is_3d else "image2d", "path": str(data), "image_size": 16,
                    "batch_size": 2, "num_workers": 0, "val_fraction": 0.25},
    }
    return merge(cfg, extra)


def tiny_cfg(data: Path | str, exp: Path | str, is_3d: bool = False, **extra: Any) -> TrainConfig:
    return load_config(tiny_cfg_dict(data, exp, is_3d, **extra))


class Recorder(TrainCallbacks):
    """Records everything; asks to stop once ``stop_at`` steps have run in this process."""

    def __init__(self, stop_at: Optional[int] = None) -> None:
        self.stop_at = stop_at
        self.progress: list[ProgressInfo] = []
        self.metrics: list[tuple[int, dict]] = []
        self.samples: list[tuple[int, list]] = []
        self.checkpoints: list[tuple[int, Path]] = []
        self.started: list[tuple[int, int, Optional[Path]]] = []
        self.step = 0
        self.calls = 0

    def on_start(self, step: int, total: int, resumed_from: Optional[Path]) -> None:
        self.started.append((step, total, resumed_from))
        self.step = step

    def on_progress(self, info: ProgressInfo) -> None:
        self.progress.append(info)
        self.step = info.step

    def on_metrics(self, step: int, metrics: dict) -> None:
        self.metrics.append((step, metrics))

    def on_samples(self, step: int, files: list) -> None:
        self.samples.append((step, files))

    def on_checkpoint(self, step: int, path: Path) -> None:
        self.checkpoints.append((step, path))

    def should_stop(self) -> bool:
        self.calls += 1  # asked once before every step
        return self.stop_at is not None and self.calls > self.stop_at

    def losses(self) -> dict[int, float]:
        return {p.step: p.loss for p in self.progress}


class NanTrainer(Trainer):
    """Injects non-finite losses at chosen steps (1-based) into the real model's loss."""

    nan_steps: set = set()

    def build_model(self, device):
        model = super().build_model(device)
        original = model.p_losses

        def p_losses(*args, **kwargs):
            loss = original(*args, **kwargs)
            return loss * float("nan") if self.step + 1 in self.nan_steps else loss

        model.p_losses = p_losses
        return model
