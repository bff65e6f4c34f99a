"""Small real files for upload tests (deterministic bytes). A module of its own, not conftest:
several test folders have a conftest.py, and `from conftest import` would pick whichever came first."""
from __future__ import annotations

import gzip
import io

import nibabel as nib
import numpy as np
from PIL import Image


def nifti_bytes(shape=(8, 9, 10), dtype=np.float32, zooms=(1.0, 1.5, 2.0), gz: bool = True) -> bytes:
    data = np.random.default_rng(0).random(shape).astype(dtype)
    img = nib.Nifti1Image(data, np.diag([*zooms, 1.0]))
    img.header.set_zooms(tuple(zooms) + (1.0,) * (len(shape) - 3))
    raw = img.to_bytes()
    return gzip.compress(raw, compresslevel=1, mtime=0) if gz else raw  # deterministic bytes


def png_bytes(size=(16, 12), mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 128).save(buf, format="PNG")
    return buf.getvalue()


def npy_bytes(shape=(4, 5, 6)) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.zeros(shape, np.float32))
    return buf.getvalue()
