"""Exponential moving average of a model's weights, with warm-up.

decay_n = min(ema_decay, (1 + n) / (10 + n)) for the n-th update: early averages forget the
random initialisation quickly, later ones settle at ``ema_decay``.

The update count lives on the model's device and an update can be masked by a device flag (a
skipped training step), so the training step never waits for the host to decide.
"""
from __future__ import annotations

import copy
from typing import Any, Optional, Union

import torch
from torch import nn


def ema_decay_at(n: Union[int, torch.Tensor], max_decay: float) -> Union[float, torch.Tensor]:
    """Decay used for update number n (0-based); a tensor ``n`` gives a tensor on its device."""
    warm = (1.0 + n) / (10.0 + n)
    return torch.clamp(warm, max=max_decay) if isinstance(warm, torch.Tensor) else min(max_decay, warm)


class EMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        first = next(self.model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
        self._updates = torch.zeros((), dtype=torch.float64, device=device)

    @property
    def num_updates(self) -> int:
        """Updates applied so far (a host read)."""
        return int(self._updates.item())

    @torch.no_grad()
    def update(self, model: nn.Module, skip: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Move the average towards ``model``, unless ``skip`` (a bool device tensor) is True, in
        which case nothing changes (neither the weights nor the count). Returns the decay used
        (a 0-dim tensor on the device: reading it is a host sync the step does not make)."""
        n = self._updates
        decay = ema_decay_at(n, self.decay)
        keep = torch.ones_like(n) if skip is None else (~skip).to(n.dtype)
        ema_params = list(self.model.parameters())
        if ema_params:
            # ema += (1 - d) * keep * (p - ema): a skipped step adds exactly zero
            step = torch._foreach_sub([p.detach() for p in model.parameters()], ema_params)
            torch._foreach_mul_(step, ((1.0 - decay) * keep).to(ema_params[0].dtype))
            torch._foreach_add_(ema_params, step)
        for eb, b in zip(self.model.buffers(), model.buffers()):
            eb.copy_(b if skip is None else torch.where(skip, eb, b))
        n.add_(keep)
        return decay

    def state_dict(self) -> dict[str, Any]:
        return {"num_updates": self.num_updates, "decay": self.decay, "model": self.model.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._updates.fill_(int(state["num_updates"]))
        self.model.load_state_dict(state["model"])
