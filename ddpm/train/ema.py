"""Exponential moving average of a model's weights, with warm-up.

decay_n = min(ema_decay, (1 + n) / (10 + n)) for the n-th update: early averages forget the
random initialisation quickly, later ones settle at ``ema_decay``.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


def ema_decay_at(n: int, max_decay: float) -> float:
    """Decay used for update number n (0-based)."""
    return min(max_decay, (1.0 + n) / (10.0 + n))


class EMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.num_updates = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> float:
        """Move the average towards ``model``; returns the decay used."""
        d = ema_decay_at(self.num_updates, self.decay)
        ema_params = [p for p in self.model.parameters()]
        params = [p.detach() for p in model.parameters()]
        # ema = d * ema + (1 - d) * p, in one fused call per list
        torch._foreach_lerp_(ema_params, params, 1.0 - d)
        for eb, b in zip(self.model.buffers(), model.buffers()):
            eb.copy_(b)
        self.num_updates += 1
        return d

    def state_dict(self) -> dict[str, Any]:
        return {"num_updates": self.num_updates, "decay": self.decay, "model": self.model.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.num_updates = int(state["num_updates"])
        self.model.load_state_dict(state["model"])
