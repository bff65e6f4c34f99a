"""Writers of real image files for the data tests (NIfTI via nibabel, .npy, Pillow images)."""
from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Optional, Sequence

import nibabel as nib
import numpy as np
import torch
from nibabel.testing import data_path

torch.set_num_threads(1)  # 2 shared cores on this machine

NIBABEL_DATA = Path(data_path)

# voxel axis -> world direction: LPS flips x and y of RAS (DICOM's convention)
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def affine_for(spacing: Sequence[float] = (1.0, 1.0, 1.0), orient: Optional[np.ndarray] = None,
               origin: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """Affine with ``spacing`` along the voxel axes; ``orient`` (4x4, signed permutation)
    says which world axis each voxel axis runs along."""
    aff = np.diag(list(spacing) + [1.0])
    if orient is not None:
        aff = orient @ aff
    aff[:3, 3] = origin
    return aff


def write_nifti(path: Path, data: np.ndarray, affine: Optional[np.ndarray] = None, *,
                nifti2: bool = False, big_endian: bool = False,
                slope_inter: Optional[tuple[float, float]] = None) -> Path:
    """Save ``data`` as stored (dtype kept); optionally big-endian, NIfTI-2, or with an explicit
    scl_slope/scl_inter patched into the header (nibabel would otherwise choose its own)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.eye(4) if affine is None else affine
    cls, hcls = (nib.Nifti2Image, nib.Nifti2Header) if nifti2 else (nib.Nifti1Image, nib.Nifti1Header)
    header = hcls(endianness=">" if big_endian else "<")
    dtype = data.dtype.newbyteorder(">") if big_endian else data.dtype
    img = cls(data.astype(dtype), affine, header=header)
    img.set_data_dtype(dtype)
    nib.save(img, str(path))
    if slope_inter is not None:
        assert not str(path).endswith(".gz") and not nifti2, "patching needs an uncompressed NIfTI-1"
        with open(path, "r+b") as fh:  # scl_slope, scl_inter live at bytes 112..119 of NIfTI-1
            fh.seek(112)
            fh.write(struct.pack((">" if big_endian else "<") + "ff", *slope_inter))
    return path


def write_png(path: Path, arr: np.ndarray, fmt: Optional[str] = None) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if arr.dtype == np.uint16:
        img = Image.fromarray(arr.astype(np.uint16))  # 16-bit grey (I;16)
    else:
        img = Image.fromarray(arr)
    img.save(path, format=fmt)
    return path


def ramp_volume(shape: Sequence[int], dtype=np.float32) -> np.ndarray:
    """Distinct values per voxel, so any reordering of axes is visible."""
    return np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape).astype(dtype)


def make_folder(root: Path, n: int, shape=(8, 8, 8), ext=".nii.gz", seed=0) -> list[Path]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        data = rng.normal(100, 20, size=shape).astype(np.float32)
        p = root / f"vol_{i:03d}{ext}"
        if ext == ".npy":
            p.parent.mkdir(parents=True, exist_ok=True)
            np.save(p, data)
        else:
            write_nifti(p, data)
        out.append(p)
    return out


def bump_mtime(path: Path) -> None:
    """Make a rewritten file's mtime differ even on coarse-clock filesystems."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
