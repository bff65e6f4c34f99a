"""Small synthetic datasets the browser uploads: NIfTI volumes with bright blobs (and one bad
file), and PNG images of shapes."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

SPACING = (1.0, 1.25, 2.0)


def nifti_folder(root: Path, n: int = 5, size: int = 20, bad: bool = True) -> Path:
    """root/phantoms/{sub/}vol{i}.nii.gz (nested folders, as real datasets have; one with an
    awkward name) + notes/bad.nii.gz."""
    folder = root / "phantoms"
    rng = np.random.default_rng(0)
    zz, yy, xx = np.mgrid[:size, :size, :size]
    for i in range(n):
        c = rng.uniform(size * 0.3, size * 0.7, 3)
        r = rng.uniform(size * 0.15, size * 0.3)
        vol = np.exp(-(((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) / (2 * r * r))) * 1000
        vol = (vol + rng.normal(0, 10, vol.shape)).astype(np.float32)
        affine = np.diag([*SPACING, 1.0])
        sub = folder / ("sub" if i % 2 else "")
        name = f"vol{i}.nii.gz"
        if i == 4:  # a space, a '#' and a non-ASCII letter: the URL must encode each segment
            sub, name = folder / "scan set #2", f"vol {i}é.nii.gz"
        sub.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(vol, affine), str(sub / name))
    if bad:
        (folder / "notes").mkdir(parents=True, exist_ok=True)
        # named like a volume, but the bytes are text: the server must refuse it by content
        (folder / "notes" / "bad.nii.gz").write_bytes(b"this is not a NIfTI volume\n" * 20)
    return folder


def png_folder(root: Path, n: int = 8, size: int = 16) -> Path:
    folder = root / "shapes"
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        c = size / 2 + (i % 3 - 1) * size / 6
        r = size / 4 + (i % 2) * size / 8
        img = ((np.hypot(yy - c, xx - size / 2) < r) * 220 + 20).astype(np.uint8)
        Image.fromarray(img, mode="L").save(folder / f"img{i:02d}.png")
    return folder
