"""Sample files in a run folder: what ``ddpm sample`` writes and the trainer's metric-step previews.

3D samples: ``sample-0000.nii.gz`` (float32 in [0, 1], affine = diag(output spacing) with the
volume centred on the origin, RAS axes as the training data were reoriented) and
``sample-0000.png`` (axial | coronal | sagittal mid slices side by side). 2D samples:
``sample-0000.png`` and one ``grid.png`` of all samples. Every file is written atomically.
"""
from __future__ import annotations

import gzip
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import nibabel as nib
import numpy as np
import torch
from PIL import Image

from .atomic import atomic_write_bytes

_PREVIEW_MIN_SIDE = 128  # small volumes are upscaled (nearest) so previews are visible


@dataclass(frozen=True)
class SampleFile:
    """One generated sample on disk. ``volume_path`` is the .nii.gz (3D) or None (2D)."""

    index: int
    volume_path: Optional[Path]
    preview_path: Path
    shape: tuple[int, ...]   # (C, D, H, W) or (C, H, W)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "volume_path": str(self.volume_path) if self.volume_path else None,
                "preview_path": str(self.preview_path), "shape": list(self.shape)}


def nifti_affine(spacing: Sequence[float], shape: Sequence[int]) -> np.ndarray:
    """RAS affine: voxel (i, j, k) -> mm, spacing on the diagonal, volume centre at the origin."""
    sp = np.asarray(spacing, dtype=np.float64)
    aff = np.diag(np.append(sp, 1.0))
    aff[:3, 3] = -(np.asarray(shape[:3], dtype=np.float64) - 1) / 2 * sp
    return aff


def _to_uint8(a: np.ndarray) -> np.ndarray:
    return (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _upscale(img: Image.Image, min_side: int) -> Image.Image:
    factor = max(1, math.ceil(min_side / max(1, min(img.size))))
    return img.resize((img.width * factor, img.height * factor), Image.NEAREST) if factor > 1 else img


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _image_2d(x: np.ndarray) -> Image.Image:
    """(C, H, W) in [0, 1] -> grey (C=1), RGB (C=3), otherwise the first channel."""
    if x.shape[0] == 3:
        return Image.fromarray(_to_uint8(np.moveaxis(x, 0, -1)), "RGB")
    return Image.fromarray(_to_uint8(x[0]), "L")


def mid_slices(vol: np.ndarray) -> np.ndarray:
    """(D, H, W) volume in RAS order -> axial | coronal | sagittal mid slices, superior /
    anterior up, side by side with a 2-pixel black gap (cube inputs give equal panels)."""
    x, y, z = (s // 2 for s in vol.shape)
    axial = vol[:, :, z].T[::-1]      # rows: anterior at the top
    coronal = vol[:, y, :].T[::-1]    # rows: superior at the top
    sagittal = vol[x, :, :].T[::-1]   # rows: superior at the top
    h = max(p.shape[0] for p in (axial, coronal, sagittal))
    panels = []
    for p in (axial, coronal, sagittal):
        pad = np.zeros((h, p.shape[1]), dtype=np.float32)
        pad[: p.shape[0]] = p
        panels += [pad, np.zeros((h, 2), dtype=np.float32)]
    return np.concatenate(panels[:-1], axis=1)


def save_samples(x01: torch.Tensor, out_dir: Union[str, Path], spacing: Optional[Sequence[float]] = None,
                 start_index: int = 0, grid: bool = True) -> list[SampleFile]:
    """Write a batch (N, C, *spatial) in [0, 1]; 3D if it has three spatial axes."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arr = x01.detach().float().clamp(0, 1).cpu().numpy()
    is_3d = arr.ndim == 5
    files = []
    for k, x in enumerate(arr):
        idx = start_index + k
        stem = out / f"sample-{idx:04d}"
        if is_3d:
            data = x[0] if x.shape[0] == 1 else np.moveaxis(x, 0, -1)  # (D,H,W) or (D,H,W,C)
            sp = tuple(spacing) if spacing is not None else (1.0, 1.0, 1.0)
            img = nib.Nifti1Image(np.ascontiguousarray(data, dtype=np.float32), nifti_affine(sp, data.shape))
            img.set_qform(img.affine, code=1)
            img.set_sform(img.affine, code=1)
            img.header.set_xyzt_units("mm")
            vol_path = stem.with_suffix(".nii.gz")
            raw = gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)
            atomic_write_bytes(vol_path, lambda fh, raw=raw: fh.write(raw))
            preview = _upscale(Image.fromarray(_to_uint8(mid_slices(x[0])), "L"), _PREVIEW_MIN_SIDE)
            png = stem.with_suffix(".png")
            atomic_write_bytes(png, lambda fh, b=_png_bytes(preview): fh.write(b))
            files.append(SampleFile(idx, vol_path, png, tuple(x.shape)))
        else:
            png = stem.with_suffix(".png")
            atomic_write_bytes(png, lambda fh, b=_png_bytes(_image_2d(x)): fh.write(b))
            files.append(SampleFile(idx, None, png, tuple(x.shape)))
    if grid and not is_3d and len(arr):
        write_grid([_image_2d(x) for x in arr], out / "grid.png")
    return files


def write_grid(images: list[Image.Image], path: Path, gap: int = 2) -> Path:
    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    w, h = images[0].size
    sheet = Image.new(images[0].mode, (cols * (w + gap) - gap, rows * (h + gap) - gap))
    for i, im in enumerate(images):
        sheet.paste(im, ((i % cols) * (w + gap), (i // cols) * (h + gap)))
    sheet = _upscale(sheet, _PREVIEW_MIN_SIDE)
    atomic_write_bytes(path, lambda fh: fh.write(_png_bytes(sheet)))
    return path
