"""What makes a labelled folder, as rules on names and arrays: no file reading, no torch.

The engine (``ddpm.finetune.labelled``) applies these to files on disk; the API applies the same
rules to each uploaded file as it arrives (the API process never imports torch, and
``ddpm.data`` does). Reasons are returned without the file's name: each caller prefixes the
name it shows (a server path for the engine, the dataset path for the API).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

# affines whose entries differ by less than this (mm) describe the same grid; scanners and
# converters round the header's floats differently
AFFINE_TOLERANCE_MM = 1e-3
# (image folder, label folder, image-name suffix before the extension)
LAYOUTS = (("images", "labels", ""), ("imagesTr", "labelsTr", "_0000"))
# the layouts in words, for the engine's and the API's "not a labelled folder" messages
LAYOUTS_TEXT = "images/ and labels/ holding files of the same names (or nnU-Net's imagesTr/ and labelsTr/)"


def label_value_problem(values: np.ndarray) -> Optional[str]:
    """Why ``values`` is not a label map (class numbers 0..K-1), or None when it is one."""
    if not np.all(np.isfinite(values)):
        return "label has NaN or Inf values; a label map holds class numbers"
    whole = np.round(values)
    bad = values != whole
    if bad.any():
        return (f"label has non-integer values (e.g. {float(values[bad].flat[0]):g}); "
                "a label map holds class numbers 0..K-1")
    if values.size and whole.min() < 0:
        return f"label has negative values ({int(whole.min())}); classes are 0..K-1"
    return None


def grid_problem(label_shape: Sequence[int], image_shape: Sequence[int], label_affine: Optional[np.ndarray],
                 image_affine: Optional[np.ndarray], image_name: str) -> Optional[str]:
    """Why a label is not on its image's grid (spatial shape, then affine), or None."""
    if tuple(label_shape) != tuple(image_shape):
        return (f"grid {tuple(label_shape)} differs from its image's {tuple(image_shape)} ({image_name}); "
                "a label must be on its image's grid")
    if label_affine is not None and image_affine is not None:
        gap = float(np.abs(np.asarray(image_affine, float) - np.asarray(label_affine, float)).max())
        if gap > AFFINE_TOLERANCE_MM:
            return (f"affine differs from its image's ({image_name}) by up to {gap:.3g} mm; "
                    "a label must be on its image's grid")
    return None


def class_voxels(values: np.ndarray) -> dict[int, int]:
    """Class number -> voxel count of a checked label map (classes present only)."""
    classes, counts = np.unique(np.asarray(values).astype(np.int64), return_counts=True)
    return {int(c): int(n) for c, n in zip(classes, counts)}


@dataclass(frozen=True)
class PairRole:
    """Where a file sits in a labelled folder given by relative paths (``root`` '' = top)."""

    role: str  # "image" / "label"
    root: str  # the folder holding images/ and labels/ ('' or 'brains', 'a/b')
    case: str  # the case name: the label's file name without extension
    partner_dir: str  # the other folder's path ('brains/labels')
    partner_stem: str  # the partner's file name without extension


def pair_role(path: str, ext: str) -> Optional[PairRole]:
    """The role of a file at ``path`` (POSIX, relative; ``ext`` its extension as ``file_ext``
    gives it) in a labelled layout, or None when it is in no image/label folder. An nnU-Net
    image without the ``_0000`` suffix is None too (it cannot be paired)."""
    parts = path.split("/")
    if len(parts) < 2 or not ext or not parts[-1].lower().endswith(ext):
        return None
    folder, name = parts[-2], parts[-1]
    root = "/".join(parts[:-2])
    stem = name[: len(name) - len(ext)]
    join = (lambda d: f"{root}/{d}" if root else d)
    for images, labels, suffix in LAYOUTS:
        if folder == images:
            if suffix and not stem.endswith(suffix):
                return None
            case = stem[: len(stem) - len(suffix)] if suffix else stem
            return PairRole("image", root, case, join(labels), case)
        if folder == labels:
            return PairRole("label", root, stem, join(images), stem + suffix)
    return None
