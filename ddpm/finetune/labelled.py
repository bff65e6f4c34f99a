"""A labelled folder: finding its (image, label) pairs and checking each pair.

Two layouts are accepted:
  <root>/images/<name>.<ext>   + <root>/labels/<name>.<ext>         (same file names)
  <root>/imagesTr/<case>_0000.<ext> + <root>/labelsTr/<case>.<ext>  (nnU-Net / MSD)
A label is a map of whole numbers >= 0 on its image's grid: the same spatial shape and (NIfTI)
the same affine within ``AFFINE_TOLERANCE_MM``. 2D works the same way with PNG (or other 2D)
masks. Every problem names the file and the reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ddpm.data.io import SUPPORTED_EXTS, DataError, Header, file_ext, read_header, read_image_file

from .label_rules import AFFINE_TOLERANCE_MM, LAYOUTS, LAYOUTS_TEXT, grid_problem, label_value_problem

__all__ = ["AFFINE_TOLERANCE_MM", "LAYOUTS", "LabelledPair", "check_pair", "find_pairs", "labelled_pairs",
           "layout_of", "read_label"]

# 2D (PIL) modes of one number per pixel; "P" (palette) pixels are indices, i.e. the classes
_PIL_LABEL_MODES = ("1", "L", "P", "I", "I;16", "I;16B", "I;16L", "F")


@dataclass(frozen=True)
class LabelledPair:
    """One labelled case: its name (the label's file name without extension) and two files."""

    case: str
    image: Path
    label: Path


def _stem(path: Path) -> str:
    return path.name[: len(path.name) - len(file_ext(path))]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and file_ext(p) in SUPPORTED_EXTS)


def layout_of(root: Path) -> tuple[Path, Path, str]:
    """(image folder, label folder, image-name suffix) of a labelled folder; DataError if none."""
    if not root.is_dir():
        raise DataError(f"labelled dataset {root} is not a folder", root)
    for images, labels, suffix in LAYOUTS:
        if (root / images).is_dir() and (root / labels).is_dir():
            return root / images, root / labels, suffix
    raise DataError(f"{root}: a labelled dataset needs the folders {LAYOUTS_TEXT}", root)


def find_pairs(root: Path | str) -> tuple[list[LabelledPair], list[str]]:
    """(pairs matched by name, problems): an image or label without its partner is a problem."""
    root = Path(root)
    image_dir, label_dir, suffix = layout_of(root)
    labels = {_stem(p): p for p in _files(label_dir)}
    pairs, problems, matched = [], [], set()
    for image in _files(image_dir):
        stem = _stem(image)
        if suffix:
            if not stem.endswith(suffix):
                problems.append(f"{image}: only single-channel cases are supported; an nnU-Net image "
                                f"is named <case>{suffix}.<ext>")
                continue
            stem = stem[: -len(suffix)]
        label = labels.get(stem)
        if label is None:
            problems.append(f"{image}: has no label (expected {label_dir / (stem + file_ext(image))})")
            continue
        matched.add(stem)
        pairs.append(LabelledPair(stem, image, label))
    for stem, label in labels.items():
        if stem not in matched and not any(p.startswith(f"{label}:") for p in problems):
            problems.append(f"{label}: has no image (expected {image_dir / (stem + suffix + file_ext(label))})")
    return pairs, problems


def read_label(path: Path | str, header: Optional[Header] = None) -> np.ndarray:
    """The label map of ``path`` as int64 in the file's own axis order (2D: rows, cols);
    DataError naming the file when its values are not whole numbers >= 0 or it has channels."""
    path = Path(path)
    header = header or read_header(path)
    mode = header.extra.get("mode")
    if mode is not None and mode in _PIL_LABEL_MODES:
        # a palette PNG's indices are its classes: read them, not the colours they show
        from PIL import Image, ImageSequence

        with Image.open(path) as im:
            arr = np.stack([np.asarray(f, dtype=np.float64) for f in ImageSequence.Iterator(im)])
        arr = arr if header.dims == 3 else arr[0]
    elif header.channels != 1:
        raise DataError(f"{path}: a label map has one channel; this file has {header.channels} "
                        f"({mode or header.dtype})", path)
    else:
        arr, _, _ = read_image_file(path, header)
    problem = label_value_problem(arr)
    if problem:
        raise DataError(f"{path}: {problem}", path)
    return np.round(arr).astype(np.int64)


def check_pair(pair: LabelledPair, num_classes: Optional[int] = None) -> Optional[str]:
    """Why this pair cannot be used (naming the file), or None when it can."""
    try:
        image, label = read_header(pair.image), read_header(pair.label)
        problem = grid_problem(label.spatial_shape, image.spatial_shape, label.affine, image.affine,
                               pair.image.name)
        if problem:
            return f"{pair.label}: {problem}"
        values = read_label(pair.label, label)
    except DataError as exc:
        return str(exc)
    if num_classes is not None and values.max(initial=0) >= num_classes:
        return (f"{pair.label}: has class {int(values.max())} but task.num_classes is {num_classes} "
                f"(classes 0..{num_classes - 1})")
    return None


def labelled_pairs(root: Path | str, num_classes: Optional[int] = None) -> list[LabelledPair]:
    """Every pair of a labelled folder, all checked; one DataError listing the first problems."""
    pairs, problems = find_pairs(root)
    problems += [p for p in (check_pair(pair, num_classes) for pair in pairs) if p]
    if problems:
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise DataError(problems[0] if len(problems) == 1 else
                        f"{len(problems)} problems in {root}: " + "; ".join(problems[:3]) + more, root)
    if not pairs:
        raise DataError(f"{root}: no labelled cases (supported: {', '.join(SUPPORTED_EXTS)})", root)
    return pairs
