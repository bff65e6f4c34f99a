"""Data: read NIfTI / .npy / 2D images, preprocess once (cached), serve as torch datasets.

The names are resolved lazily (as in ``ddpm``) so that the torch-free parts (``ddpm.data.io``
and what builds on it, e.g. ``ddpm.finetune.labelled``, which the API uses to check labelled
datasets at submit) import without torch.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

# name -> the submodule defining it
_WHERE = {
    "DATASETS": "datasets", "Image2DDiffusionDataset": "datasets", "Volume3DDiffusionDataset": "datasets",
    "build_datasets": "datasets", "find_files": "datasets", "split_files": "datasets",
    "format_inspect_table": "inspect", "inspect_path": "inspect",
    "SUPPORTED_EXTS": "io", "DataError": "io", "read_header": "io", "read_image_file": "io",
    "DataWarning": "preprocess", "PreprocessSettings": "preprocess", "preprocess_file": "preprocess",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'ddpm.data' has no attribute {name!r}")
