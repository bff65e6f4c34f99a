"""Segmentation loss (soft Dice + cross-entropy) and the Dice score of hard label maps.

Dice of class c between a prediction P and a label L: 2 |P=c and L=c| / (|P=c| + |L=c|); a class
absent from both counts 1.0 (nothing to find, nothing found). Scores are over the foreground
classes 1..K-1: background Dice is high on any volume and says little.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_SMOOTH = 1e-5  # keeps the soft Dice of a class absent from a whole batch finite


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy + (1 - soft Dice) of ``logits`` (B, K, *S) against ``target`` (B, *S) int.

    The soft Dice is taken over the whole batch per foreground class and averaged over classes
    (batch Dice: a case without some class does not make that class's term meaningless)."""
    logits = logits.float()  # under autocast: softmax and sums in fp32
    ce = F.cross_entropy(logits, target)
    k = logits.shape[1]
    probs = logits.softmax(dim=1)
    onehot = F.one_hot(target, k).movedim(-1, 1).to(probs.dtype)
    axes = [0] + list(range(2, logits.dim()))
    inter = (probs * onehot).sum(axes)[1:]
    total = (probs.sum(axes) + onehot.sum(axes))[1:]
    dice = (2 * inter + _SMOOTH) / (total + _SMOOTH)
    return ce + (1 - dice.mean())


def dice_per_class(pred: np.ndarray | torch.Tensor, label: np.ndarray | torch.Tensor,
                   num_classes: int) -> dict[str, float]:
    """Dice of each foreground class ("1" .. "K-1") between two integer maps of one shape."""
    pred_t = torch.as_tensor(pred).reshape(-1)
    label_t = torch.as_tensor(label).reshape(-1)
    if pred_t.shape != label_t.shape:
        raise ValueError(f"prediction has {pred_t.numel()} voxels, label {label_t.numel()}")
    out = {}
    for c in range(1, num_classes):
        p, t = pred_t == c, label_t == c
        denom = int(p.sum()) + int(t.sum())
        out[str(c)] = 1.0 if denom == 0 else 2.0 * int((p & t).sum()) / denom
    return out


def mean_over(scores: list[dict[str, float]], num_classes: int) -> tuple[float, dict[str, float]]:
    """(mean over classes and cases, per-class mean over cases) of per-case Dice dicts."""
    per_class = {str(c): float(np.mean([s[str(c)] for s in scores])) if scores else float("nan")
                 for c in range(1, num_classes)}
    mean = float(np.mean(list(per_class.values()))) if per_class else float("nan")
    return mean, per_class
