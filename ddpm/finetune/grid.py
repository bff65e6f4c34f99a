"""Between a file's own grid and the model's: labels go in the way images do (RAS, the same
resize plan, the same padding) but by nearest neighbour, and predictions come back out (crop
the padding, resize the class probabilities, pick the class, undo the reorientation).

Images are preprocessed by ``ddpm.data.preprocess`` exactly as for training.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from nibabel import orientations as ornt

from ddpm.data.io import Header, ras_axes, ras_spacing, read_header, read_image_file, to_ras
from ddpm.data.preprocess import PreprocessSettings, check_header, preprocess_array, resize, resize_plan

from .labelled import LabelledPair, read_label


def settings_for(cfg: Any) -> PreprocessSettings:
    """The image preprocessing of a (resolved) FinetuneConfig."""
    ds = cfg.dataset
    return PreprocessSettings(dims=cfg.dims, image_size=ds.image_size, channels=ds.image_channels,
                              keep_aspect=ds.keep_aspect, clip_percentiles=ds.clip_percentiles,
                              window=ds.intensity.window if ds.intensity is not None else None)


def _reoriented(header: Header) -> bool:
    return header.dims == 3 and header.axcodes is not None


def _plan(header: Header, settings: PreprocessSettings) -> tuple[tuple[int, ...], tuple[int, ...],
                                                                tuple[tuple[int, int], ...]]:
    """(shape after reorientation, resized shape, padding) of a file, as preprocess_array does it."""
    if _reoriented(header):
        shape, spacing = ras_axes(header, header.spatial_shape), ras_spacing(header)
    else:
        shape, spacing = header.spatial_shape, header.spacing
    target, pads = resize_plan(shape, spacing, settings.image_size, settings.keep_aspect)
    return tuple(shape), target, pads


def image_on_model_grid(path: Any, settings: PreprocessSettings) -> tuple[np.ndarray, Header]:
    """(C, *[image_size]) float32 in [0, 1], as training preprocesses it, and the file's header."""
    header = read_header(path)
    check_header(header, settings)
    arr, _, _ = read_image_file(path, header)
    return preprocess_array(arr, header, settings), header


def label_on_model_grid(label: np.ndarray, header: Header, settings: PreprocessSettings) -> np.ndarray:
    """A label map in its file's axes -> (image_size per side) int64, by nearest neighbour."""
    if _reoriented(header):
        label, _ = to_ras(label, header.affine)
    _, target, pads = _plan(header, settings)
    x = torch.from_numpy(np.ascontiguousarray(label, dtype=np.float32))[None, None]
    x = F.interpolate(x, size=target, mode="nearest-exact")[0, 0].numpy()
    return np.pad(x, pads, mode="constant", constant_values=0).astype(np.int64)


def pair_on_model_grid(pair: LabelledPair, settings: PreprocessSettings) -> tuple[np.ndarray, np.ndarray]:
    """(image (C, *S) in [0, 1], label (*S) int64) of a labelled case on the model's grid."""
    image, header = image_on_model_grid(pair.image, settings)
    return image, label_on_model_grid(read_label(pair.label), header, settings)


def from_ras(arr: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Undo ``to_ras``: a RAS-ordered array back to the axis order of the file with ``affine``."""
    current = ornt.io_orientation(affine)
    ras = ornt.axcodes2ornt(("R", "A", "S"))
    if np.array_equal(current, ras):
        return arr
    return ornt.apply_orientation(arr, ornt.ornt_transform(ras, current))


def probabilities_to_file_grid(probs: np.ndarray, header: Header, settings: PreprocessSettings) -> np.ndarray:
    """Class probabilities (K, *[image_size]) -> the label map (int) on the file's own grid."""
    shape, target, pads = _plan(header, settings)
    inner = tuple(slice(before, before + size) for (before, _), size in zip(pads, target))
    cropped = np.ascontiguousarray(probs[(slice(None),) + inner], dtype=np.float32)
    classes = np.argmax(resize(cropped, shape), axis=0)
    if _reoriented(header):
        classes = from_ras(classes, header.affine)
    return np.ascontiguousarray(classes)
