"""Model builders for bench/unet.py: our UNet and the peers, configured alike where they can be.

Common settings: base 32 channels, mults 1,2,4, 2 res blocks per level, full attention at the
lowest level only, 32 channels per head, 1 input and 1 output channel. Where a peer cannot
match, ``build`` returns a note that the table prints.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Callable

import torch
from torch import nn

MODELS = ["ours", "ours-ckpt", "ours-contig", "ours-compile", "monai", "monai-flash", "lucidrains"]

# Imported by lucidrains' package for its Trainer, datasets and FID code only; its Unet needs none.
_LUCIDRAINS_TRAINING_ONLY = [
    "torchvision", "torchvision.transforms", "torchvision.utils", "accelerate", "ema_pytorch",
    "scipy", "scipy.optimize", "pytorch_fid", "pytorch_fid.fid_score", "pytorch_fid.inception",
]


class _Unavailable:
    """Stand-in for a training-only dependency: importable, fails loudly if actually used."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __call__(self, *a, **k):
        raise RuntimeError(f"{self._name} is a stand-in in the bench env (not installed)")

    def __getattr__(self, attr: str) -> "_Unavailable":
        return _Unavailable(f"{self._name}.{attr}")


STUBBED: list[str] = []


def _stub_missing(names: list[str]) -> list[str]:
    """Register an inert module for each name that is not installed (found by spec, never by a
    trial import: a half-failed import of a mismatched torchvision would leave ops registered)."""
    stubbed = []
    for name in names:
        top = name.split(".")[0]
        if name in sys.modules or (top not in stubbed and importlib.util.find_spec(top) is not None):
            continue
        mod = types.ModuleType(name)

        def _getattr(attr: str, _n: str = name) -> _Unavailable:
            if attr.startswith("__"):  # introspection (inspect, pickling) must see a plain module
                raise AttributeError(attr)
            return _Unavailable(f"{_n}.{attr}")

        mod.__getattr__ = _getattr  # type: ignore[attr-defined]
        mod.__path__ = []  # lets "import a.b" resolve to our stub of a.b
        sys.modules[name] = mod
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, mod)
        stubbed.append(name)
    STUBBED.extend(stubbed)
    return STUBBED


def _our_unet_class() -> type:
    """ddpm.nn.UNet without running ddpm/__init__.py: the bench needs the network only, and the
    package's other modules need pydantic etc., which a bare GPU machine may not have."""
    if "ddpm" not in sys.modules:
        pkg = types.ModuleType("ddpm")
        pkg.__path__ = [str(Path(__file__).resolve().parents[1] / "ddpm")]
        sys.modules["ddpm"] = pkg
    from ddpm.nn import UNet

    return UNet


def build(name: str, dims: int, size: int, flash_ok: bool = True,
          channels_last: bool = True) -> tuple[nn.Module, Callable, str]:
    """-> (model, call(model, x, t), note). Raises NotImplementedError when the peer has no such model.
    ``channels_last`` applies to our UNet only (its default layout); peers run as published."""
    if name in ("ours", "ours-ckpt", "ours-contig", "ours-compile"):
        UNet = _our_unet_class()

        model = UNet(dims=dims, in_channels=1, image_size=size, dim=32, channel_mults=(1, 2, 4),
                     res_blocks=2, attn_res=[size // 4], num_head_channels=32,
                     checkpointing=name == "ours-ckpt",
                     channels_last=channels_last and name != "ours-contig")
        note = {"ours-ckpt": "activation checkpointing on", "ours-contig": "contiguous (NCDHW) layout",
                "ours-compile": "torch.compile (compile time not in the timings)"}
        return model, lambda m, x, t: m(x, t), note.get(name, "")

    if name in ("monai", "monai-flash"):
        from monai.networks.nets import DiffusionModelUNet

        model = DiffusionModelUNet(
            spatial_dims=dims, in_channels=1, out_channels=1, num_res_blocks=2, channels=(32, 64, 128),
            attention_levels=(False, False, True), norm_num_groups=32, num_head_channels=32,
            use_flash_attention=name == "monai-flash",
        )
        return model, lambda m, x, t: m(x, t), ""

    if name == "lucidrains":
        if dims != 2:
            raise NotImplementedError("lucidrains' Unet is 2D only (its KarrasUnet3D is a different, "
                                      "factorised video design)")
        stubbed = _stub_missing(_LUCIDRAINS_TRAINING_ONLY)
        from denoising_diffusion_pytorch import Unet

        # flash_attn=True routes its full attention through scaled_dot_product_attention, but on
        # CUDA it allows only the flash kernel, which has no fp32 version: off for CUDA fp32.
        model = Unet(dim=32, dim_mults=(1, 2, 4), channels=1, attn_heads=4, attn_dim_head=32,
                     flash_attn=flash_ok)
        note = "linear attn at the upper levels (fixed); 7x7 init conv; channels per level shifted"
        if not flash_ok:
            note += "; flash_attn off (its CUDA path is flash-only, no fp32)"
        if stubbed:
            note += f"; stand-ins for unused imports: {', '.join(sorted({s.split('.')[0] for s in stubbed}))}"
        return model, lambda m, x, t: m(x, t), note

    raise ValueError(f"unknown model {name!r}; known: {MODELS}")


