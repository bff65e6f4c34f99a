"""A tiny labelled 3D set (phantoms with two foreground classes) and a tiny pretrained run,
for the fine-tuning tests."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from train_helpers import merge, tiny_cfg

from ddpm.train import run_training

SHAPE = (16, 16, 12)
# a left-handed (LAS) anisotropic grid: predictions must come back through the reorientation
AFFINE = np.array([[-1.0, 0, 0, 8.0], [0, 1.0, 0, -4.0], [0, 0, 1.5, 2.0], [0, 0, 0, 1]])


def phantom(i: int) -> tuple[np.ndarray, np.ndarray]:
    """(image float32, label uint8): a ball (class 1) and a box (class 2) moving with ``i``."""
    rng = np.random.default_rng(i)
    x, y, z = np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij")
    label = np.zeros(SHAPE, np.uint8)
    label[(x - 5 - i % 3) ** 2 + (y - 6) ** 2 + (z - 6) ** 2 <= 9] = 1
    label[9 + i % 2:14, 3:8 + i % 3, 3:9] = 2
    image = (np.array([10.0, 80.0, 150.0])[label] + rng.normal(0, 5, SHAPE)).astype(np.float32)
    return image, label


def write_labelled(root: Path, n: int = 5, start: int = 0, nnunet: bool = False) -> Path:
    images, labels = (root / "imagesTr", root / "labelsTr") if nnunet else (root / "images", root / "labels")
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        image, label = phantom(i)
        suffix = "_0000" if nnunet else ""
        nib.save(nib.Nifti1Image(image, AFFINE), str(images / f"case{i:02d}{suffix}.nii.gz"))
        nib.save(nib.Nifti1Image(label, AFFINE), str(labels / f"case{i:02d}.nii.gz"))
    return root


def pretrain(tmp: Path, images: Path) -> Path:
    """A 3-step training run on the labelled set's images (its run folder)."""
    cfg = tiny_cfg(images, tmp / "exp", is_3d=True, model={"iterations": 3, "use_ema": True})
    run = tmp / "exp" / "pre"
    assert run_training(cfg, run).status == "completed"
    return run


def ft_dict(data: Path, exp: Path, pretrained: Any, **extra: Any) -> dict:
    cfg = {"pretrained": None if pretrained is None else str(pretrained), "gpu": -1, "seed": 1,
           "experiment_path": str(exp), "task": {"type": "segmentation", "num_classes": 3},
           "model": {"lr": 2e-3, "iterations": 6, "freq_metrics": 3, "freq_checkpoint": 100},
           "dataset": {"path": str(data), "batch_size": 2, "val_fraction": 0.2}}
    return merge(cfg, extra)


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path
