"""Write a folder of synthetic data to try DDPM Studio on: 3D phantoms (.nii.gz) and 2D images (.png).

    python scripts/make_example_data.py examples            # examples/phantoms3d, examples/shapes2d
    python scripts/make_example_data.py examples --n3d 8 --size 48

The 3D phantoms are head-like: an ellipsoid "skull" shell, a softer interior and a few bright
blobs at random places, stored as int16 with an anisotropic spacing (1 x 1 x 2 mm) so the
loader's spacing-aware resize has something to do. The 2D images are discs and squares.
Torch-free on purpose: it needs only numpy, nibabel and Pillow.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # keep the real extensions: nibabel picks the format from them
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix="".join(path.suffixes))
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; these are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def phantom_3d(rng: np.random.Generator, size: int, slices: int) -> np.ndarray:
    """A head-like phantom of shape (size, size, slices) in Hounsfield-like int16 units."""
    x, y, z = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size),
                          np.linspace(-1, 1, slices), indexing="ij")
    a, b, c = rng.uniform(0.7, 0.9, 3)
    r = np.sqrt((x / a) ** 2 + (y / b) ** 2 + (z / c) ** 2)
    vol = np.full(r.shape, -1000.0)
    vol[r < 1.0] = 40.0 + rng.normal(0, 5)
    vol[(r >= 0.88) & (r < 1.0)] = 900.0
    for _ in range(rng.integers(2, 5)):
        cx, cy, cz = rng.uniform(-0.45, 0.45, 3)
        rad = rng.uniform(0.08, 0.2)
        blob = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 < rad ** 2
        vol[blob] = rng.uniform(60, 200)
    vol += rng.normal(0, 8, vol.shape)
    return vol.astype(np.int16)


def shape_2d(rng: np.random.Generator, size: int) -> np.ndarray:
    img = np.zeros((size, size), np.float32)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    for _ in range(rng.integers(1, 4)):
        cx, cy, rad = rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.75), rng.uniform(0.08, 0.22)
        if rng.random() < 0.5:
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 < rad ** 2
        else:
            mask = (abs(xx - cx) < rad) & (abs(yy - cy) < rad)
        img[mask] = rng.uniform(0.4, 1.0)
    return (img * 255).astype(np.uint8)


def write_examples(out: Path, n3d: int = 6, n2d: int = 24, size: int = 48, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    for i in range(n3d):
        vol = phantom_3d(rng, size, size // 2)
        img = nib.Nifti1Image(vol, affine)
        img.header.set_xyzt_units("mm")
        _atomic_write(out / "phantoms3d" / "volumes" / f"phantom_{i:03d}.nii.gz",
                      lambda p, img=img: nib.save(img, p))
    for i in range(n2d):
        arr = shape_2d(rng, 32)
        _atomic_write(out / "shapes2d" / f"shape_{i:03d}.png",
                      lambda p, arr=arr: Image.fromarray(arr).save(p, format="PNG"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="folder to write (created)")
    ap.add_argument("--n3d", type=int, default=6, help="number of 3D phantoms")
    ap.add_argument("--n2d", type=int, default=24, help="number of 2D images")
    ap.add_argument("--size", type=int, default=48, help="in-plane size of the 3D phantoms")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    write_examples(args.out, args.n3d, args.n2d, args.size, args.seed)
    print(f"wrote {args.n3d} phantoms to {args.out / 'phantoms3d'} and {args.n2d} images to {args.out / 'shapes2d'}")


if __name__ == "__main__":
    main()
