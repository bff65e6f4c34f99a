"""The labelled cases as a torch dataset, the held-out split and the draw of labelled cases.

An item is one tensor (C + 1, *spatial): the image's C channels in [-1, 1] (as training feeds
the U-Net), then the label map as a float channel. One tensor, so the training loop's data
stream (ordering, resume position, per-item RNG seeds for the flips) carries labelled cases
unchanged; ``split_item`` takes it apart again.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ddpm.config import ConfigError
from ddpm.data.datasets import split_files
from ddpm.data.preprocess import PreprocessSettings

from .grid import pair_on_model_grid, settings_for
from .labelled import LabelledPair, labelled_pairs


def split_item(batch: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (B, C, *S), labels (B, *S) int64) of a batch of items."""
    return batch[:, :channels], batch[:, channels].round().long()


class LabelledDataset(Dataset):
    """Labelled cases on the model's grid; each case is read once and kept in memory (the point
    of fine-tuning is that there are few)."""

    def __init__(self, pairs: Sequence[LabelledPair], settings: PreprocessSettings, flip: bool = False) -> None:
        self.pairs = list(pairs)
        self.settings = settings
        self.flip = flip
        self._cases: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.pairs)

    def case(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image (C, *S) in [-1, 1], label (*S) float) of case ``index``, unflipped."""
        if index not in self._cases:
            image, label = pair_on_model_grid(self.pairs[index], self.settings)
            self._cases[index] = (image * 2.0 - 1.0, label.astype(np.float32))
        return self._cases[index]

    def __getitem__(self, index: int) -> torch.Tensor:
        image, label = self.case(index)
        item = np.concatenate([image, label[None]])
        if self.flip:
            # torch's RNG, seeded per item by the training stream: the same flips after a resume
            axes = tuple(d + 1 for d in range(self.settings.dims) if torch.rand(()) < 0.5)
            if axes:
                item = np.flip(item, axes)  # image and label together
        return torch.from_numpy(np.ascontiguousarray(item, dtype=np.float32))


def draw_cases(pairs: Sequence[LabelledPair], count: Optional[int], seed: int) -> list[LabelledPair]:
    """``count`` cases drawn with ``seed`` (all when None). Draws of one seed are nested: the 2
    cases of a budget of 2 are among the 4 of a budget of 4, so budgets compare fairly."""
    if count is None:
        return list(pairs)
    if count > len(pairs):
        raise ConfigError([("dataset.labelled_cases", f"{count} is more than the {len(pairs)} labelled "
                                                      "cases of the training split")])
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed)).tolist()
    return [pairs[i] for i in sorted(order[:count])]


def build_labelled_datasets(cfg: Any) -> tuple[LabelledDataset, LabelledDataset]:
    """(train, val) of a resolved FinetuneConfig: the held-out split first (as training splits
    files), then ``labelled_cases`` drawn from the rest."""
    ds = cfg.dataset
    pairs = labelled_pairs(ds.path, cfg.task.num_classes)
    by_image = {p.image: p for p in pairs}
    train_files, val_files = split_files([p.image for p in pairs], ds.val_fraction, cfg.seed, Path(ds.path))
    train = draw_cases([by_image[f] for f in train_files], ds.labelled_cases, cfg.seed)
    settings = settings_for(cfg)
    return (LabelledDataset(train, settings, flip=ds.flip),
            LabelledDataset([by_image[f] for f in val_files], settings))
