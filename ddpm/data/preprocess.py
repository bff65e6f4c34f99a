"""Turn one file into the model's input: (C, *spatial) float32 in [0, 1], ``image_size`` per side.

Order matters: reorient to RAS, replace non-finite voxels, clip and scale intensities on the
full-resolution data (so percentiles do not depend on the output size), then resize keeping the
physical aspect and pad with 0, which is the low end of the intensity range (background).
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .io import DataError, Header, ras_axes, ras_spacing, read_header, read_image_file, to_ras

log = logging.getLogger(__name__)

# Bump when the output of preprocess_file changes for the same input, so old caches are not reused.
PREPROCESS_VERSION = 1

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class DataWarning(UserWarning):
    """Something in a file was repaired on load (e.g. NaN voxels)."""


@dataclass(frozen=True)
class PreprocessSettings:
    dims: int
    image_size: int
    channels: int = 1
    keep_aspect: bool = True
    clip_percentiles: Optional[tuple[float, float]] = (0.5, 99.5)
    window: Optional[tuple[float, float]] = None

    def __post_init__(self) -> None:
        if self.dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {self.dims}")
        # lists from JSON configs become tuples so the settings are hashable and compare equal
        for name in ("clip_percentiles", "window"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(float(v) for v in value))

    def key_dict(self) -> dict:
        """Everything that changes the output; part of the cache key."""
        return {"version": PREPROCESS_VERSION, **asdict(self)}

    @property
    def kind(self) -> str:
        return "volume3d" if self.dims == 3 else "image2d"


def check_header(header: Header, settings: PreprocessSettings) -> None:
    """Raise DataError naming the file when it cannot feed a dataset with these settings."""
    path = header.path
    if header.dims != settings.dims:
        what = "a 2D image" if header.dims == 2 else "a 3D volume"
        need = "3D volumes (x, y, z)" if settings.dims == 3 else "2D images (rows, cols)"
        hint = ("set is_3d false and dataset.name 'image2d'" if header.dims == 2
                else "set is_3d true and dataset.name 'volume3d'")
        raise DataError(f"{path}: is {what} with shape {header.shape}, but dataset "
                        f"'{settings.kind}' needs {need}; remove the file or {hint}", path)
    c, want = header.channels, settings.channels
    if c == want:
        return
    if settings.dims == 2 and ((want == 1 and c in (3, 4)) or (want == 3 and c == 4)):
        return  # colour to grey (luminance) and RGBA to RGB are lossless enough to do silently
    if settings.dims == 3:
        raise DataError(f"{path}: 4D shape {header.shape} has {c} volumes along the last axis, "
                        f"but dataset.image_channels is {want}; the last axis is read as channels "
                        f"only when it equals image_channels (set image_channels to {c}, or split "
                        "the file into 3D volumes)" if c > 1 else
                        f"{path}: has 1 channel but dataset.image_channels is {want}", path)
    raise DataError(f"{path}: has {c} channel(s) ({header.extra.get('mode', header.dtype)}), "
                    f"but dataset.image_channels is {want}", path)


def resize_plan(spatial_shape: Sequence[int], spacing: Sequence[float], size: int,
                keep_aspect: bool) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    """(resized shape, (before, after) padding per axis) that maps a file to ``size`` per side.

    With keep_aspect the largest physical extent fills ``size`` and the other axes keep their
    physical proportion; the rest is padded symmetrically.
    """
    if not keep_aspect:
        return (size,) * len(spatial_shape), ((0, 0),) * len(spatial_shape)
    extent = [n * s for n, s in zip(spatial_shape, spacing)]
    scale = size / max(extent)
    target = tuple(int(min(size, max(1, round(e * scale)))) for e in extent)
    pads = tuple(((size - t) // 2, size - t - (size - t) // 2) for t in target)
    return target, pads


def output_spacing_for(header: Header, settings: PreprocessSettings) -> tuple[float, ...]:
    """mm per output voxel along each (RAS) axis for this file."""
    spacing = ras_spacing(header)
    shape = ras_axes(header, header.spatial_shape)
    extent = [n * s for n, s in zip(shape, spacing)]
    if settings.keep_aspect:
        return (max(extent) / settings.image_size,) * len(extent)
    return tuple(e / settings.image_size for e in extent)


def replace_nonfinite(arr: np.ndarray, path: Path | str) -> int:
    """Set NaN/Inf voxels (in place) to the minimum finite value, warning with the file name."""
    bad = ~np.isfinite(arr)
    count = int(bad.sum())
    if count:
        if count == arr.size:
            raise DataError(f"{path}: every voxel is NaN or Inf", path)
        fill = float(arr[~bad].min())
        arr[bad] = fill
        msg = f"{path}: {count} NaN/Inf voxel(s) set to the minimum finite value {fill:g}"
        log.warning(msg)
        warnings.warn(msg, DataWarning, stacklevel=3)
    return count


def intensity_bounds(arr: np.ndarray, settings: PreprocessSettings) -> tuple[float, float]:
    """The input range that maps to [0, 1]: the window, the percentiles, or min/max."""
    if settings.window is not None:
        return settings.window
    if settings.clip_percentiles is None:
        return float(arr.min()), float(arr.max())
    lo, hi = np.percentile(arr, settings.clip_percentiles)
    return float(lo), float(hi)


def scale_intensity(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Clip to [lo, hi] and map to [0, 1] in place; a constant image becomes all zeros."""
    np.clip(arr, lo, hi, out=arr)
    if hi > lo:
        arr -= lo
        arr *= 1.0 / (hi - lo)
    else:
        arr[...] = 0.0
    return arr


def resize(arr: np.ndarray, target: Sequence[int]) -> np.ndarray:
    """Resize (C, *spatial) to ``target``: area averaging on shrinking axes (no aliasing),
    then (bi/tri)linear interpolation on growing ones."""
    spatial = tuple(arr.shape[1:])
    target = tuple(int(t) for t in target)
    if spatial == target:
        return arr
    x = torch.from_numpy(np.ascontiguousarray(arr))[None]
    shrunk = tuple(min(s, t) for s, t in zip(spatial, target))
    if shrunk != spatial:
        x = F.interpolate(x, size=shrunk, mode="area")
    if shrunk != target:
        mode = "trilinear" if len(target) == 3 else "bilinear"
        x = F.interpolate(x, size=target, mode=mode, align_corners=False)
    return x[0].numpy()


def _to_channels_first(arr: np.ndarray, header: Header) -> np.ndarray:
    if header.channels > 1:
        return np.moveaxis(arr, -1, 0)
    return arr[None]


def _convert_2d_channels(arr: np.ndarray, want: int) -> np.ndarray:
    have = arr.shape[0]
    if have == want:
        return arr
    if want == 1:  # RGB(A) to luminance; alpha dropped
        return np.tensordot(_LUMA, arr[:3], axes=1)[None].astype(np.float32)
    return arr[:want]  # RGBA -> RGB


def preprocess_array(arr: np.ndarray, header: Header, settings: PreprocessSettings) -> np.ndarray:
    """The steps after reading: see the module docstring. ``arr`` is the file's own layout."""
    check_header(header, settings)
    spacing = header.spacing
    if settings.dims == 3 and header.axcodes is not None:
        arr, _ = to_ras(arr, header.affine)
        spacing = ras_spacing(header)
    arr = np.array(_to_channels_first(arr, header), dtype=np.float32)  # own, writable copy
    replace_nonfinite(arr, header.path)
    if settings.dims == 2:
        arr = np.ascontiguousarray(_convert_2d_channels(arr, settings.channels))
        # colour channels share one scale so hues survive
        scale_intensity(arr, *intensity_bounds(arr, settings))
    else:
        # modalities (T1, T2, ...) have unrelated scales: one range per channel
        for c in range(arr.shape[0]):
            scale_intensity(arr[c], *intensity_bounds(arr[c], settings))
    target, pads = resize_plan(arr.shape[1:], spacing, settings.image_size, settings.keep_aspect)
    arr = resize(arr, target)
    if any(p != (0, 0) for p in pads):
        arr = np.pad(arr, ((0, 0),) + pads, mode="constant", constant_values=0.0)
    return np.ascontiguousarray(arr, dtype=np.float32)


def preprocess_file(path: Path | str, settings: PreprocessSettings) -> np.ndarray:
    """Read and preprocess one file: float32 (C, *[image_size]*dims) in [0, 1]."""
    header = read_header(path)
    check_header(header, settings)  # before reading voxels: fail fast on a mismatch
    arr, _affine, _meta = read_image_file(path, header)
    return preprocess_array(arr, header, settings)
