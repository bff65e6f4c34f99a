"""DDPM Studio engine: ``from ddpm import DDPM, UNet, load_config, load_pretrained``.

The names are resolved lazily so that ``import ddpm.config`` (the API process validates jobs with
it) never pulls in torch.
"""
from __future__ import annotations

from typing import Any

__all__ = ["DDPM", "UNet", "load_config", "load_pretrained"]


def __getattr__(name: str) -> Any:
    if name == "DDPM":
        from .diffusion.gaussian import DDPM
        return DDPM
    if name == "UNet":
        from .nn import UNet
        return UNet
    if name == "load_pretrained":
        from .export import load_pretrained
        return load_pretrained
    if name == "load_config":
        from .config import load_config
        return load_config
    raise AttributeError(f"module 'ddpm' has no attribute {name!r}")
