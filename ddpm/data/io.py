"""Read one image file (NIfTI, .npy, PNG/JPEG/TIFF) into a float32 array plus its geometry.

Two levels: ``read_header`` is cheap (no voxel data; used to validate a whole folder at dataset
construction and by ``ddpm inspect``), ``read_image_file`` reads the voxels too. Axis order is
the file's own (x, y, z[, c]) for NIfTI and (rows, cols[, c]) for 2D images; reorientation
to RAS is the preprocessing step's job (``to_ras``), so ``inspect`` can report the original.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import nibabel as nib
import numpy as np
from nibabel import orientations as ornt

NIFTI_EXTS = (".nii", ".nii.gz")
NPY_EXTS = (".npy",)
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
SUPPORTED_EXTS = NIFTI_EXTS + NPY_EXTS + IMAGE_EXTS


class DataError(ValueError):
    """A file or folder the loader cannot use; the message names it and says why."""

    def __init__(self, message: str, path: Optional[Path | str] = None):
        super().__init__(message)
        self.path = None if path is None else str(path)


def file_ext(path: Path | str) -> str:
    """The supported extension of ``path`` ('' when unsupported); '.nii.gz' counts as one."""
    name = Path(path).name.lower()
    for ext in sorted(SUPPORTED_EXTS, key=len, reverse=True):
        if name.endswith(ext):
            return ext
    return ""


@dataclass
class Header:
    """Geometry of one file, read without its voxels.

    ``spatial_shape`` is (x, y, z) for volumes and (rows, cols) for 2D images; ``channels`` is
    the size of the trailing channel axis (1 when there is none); ``spacing`` is mm per voxel
    along the file's axes; ``axcodes`` the anatomical direction of each axis (NIfTI only).
    """

    path: Path
    fmt: str  # nifti1 | nifti2 | npy | png | jpeg | tiff
    spatial_shape: tuple[int, ...]
    channels: int
    spacing: tuple[float, ...]
    dtype: str
    affine: np.ndarray
    axcodes: Optional[tuple[str, ...]] = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dims(self) -> int:
        return len(self.spatial_shape)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.spatial_shape + ((self.channels,) if self.channels > 1 else ())

    def physical_extent(self) -> tuple[float, ...]:
        return tuple(n * s for n, s in zip(self.spatial_shape, self.spacing))


def _dtype_name(dt: np.dtype) -> str:
    # '>i2' reads better as 'int16 (big-endian)'
    dt = np.dtype(dt)
    name = dt.newbyteorder("=").name
    return f"{name} (big-endian)" if dt.byteorder == ">" else name


def _split_nifti_shape(shape: tuple[int, ...], path: Path) -> tuple[tuple[int, ...], int]:
    """(spatial, channels) of a NIfTI shape: trailing size-1 axes dropped, a 5D (x,y,z,1,c)
    vector image (ITK's layout) read as channels, 2D slices (x, y) or (x, y, 1) kept 2D."""
    dims = list(shape)
    if len(dims) == 5 and dims[3] == 1:
        dims = dims[:3] + [dims[4]]
    while len(dims) > 3 and dims[-1] == 1:
        dims.pop()
    if len(dims) == 3 and dims[2] == 1:
        return (dims[0], dims[1]), 1
    if len(dims) == 2:
        return (dims[0], dims[1]), 1
    if len(dims) == 3:
        return tuple(dims), 1
    if len(dims) == 4:
        return tuple(dims[:3]), dims[3]
    raise DataError(f"{path}: NIfTI with shape {tuple(shape)} has more than 4 axes; "
                    "expected (x, y, z) or (x, y, z, channels)", path)


def _nifti_header(path: Path) -> Header:
    img = nib.load(str(path))
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise DataError(f"{path}: is a {type(img).__name__} file, not a NIfTI image", path)
    hdr = img.header
    if hdr.get_data_dtype().kind not in "biuf":  # RGB24 / complex voxels: no single intensity
        raise DataError(f"{path}: NIfTI data type {hdr.get_data_dtype()} is not a real number "
                        "type; store intensities as integers or floats", path)
    spatial, channels = _split_nifti_shape(tuple(int(s) for s in img.shape), path)
    zooms = tuple(float(z) for z in hdr.get_zooms()[: len(spatial)])
    # a zero or negative pixdim would make the aspect meaningless: treat it as 1 mm
    zooms = tuple(z if np.isfinite(z) and z > 0 else 1.0 for z in zooms)
    # nibabel moves scl_slope/scl_inter from the loaded header into the array proxy
    slope = float(getattr(img.dataobj, "slope", 1.0))
    inter = float(getattr(img.dataobj, "inter", 0.0))
    fmt = "nifti2" if isinstance(img, nib.Nifti2Image) else "nifti1"
    return Header(path, fmt, spatial, channels, zooms, _dtype_name(hdr.get_data_dtype()),
                  np.asarray(img.affine, dtype=np.float64), tuple(nib.aff2axcodes(img.affine)),
                  {"scl_slope": slope, "scl_inter": inter})


def _npy_header(path: Path) -> Header:
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    shape = tuple(int(s) for s in arr.shape)
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{path}: .npy dtype {arr.dtype} is not a number type", path)
    if len(shape) == 2:
        spatial, channels = shape, 1
    elif len(shape) == 3:
        spatial, channels = shape, 1
    elif len(shape) == 4:
        spatial, channels = shape[:3], shape[3]
    else:
        raise DataError(f"{path}: .npy with shape {shape} is not 2D (H, W), 3D (D, H, W) "
                        "or 4D (D, H, W, C)", path)
    return Header(path, "npy", spatial, channels, (1.0,) * len(spatial), _dtype_name(arr.dtype),
                  np.eye(4), None)


def _pil_header(path: Path) -> Header:
    from PIL import Image

    with Image.open(path) as im:
        frames = getattr(im, "n_frames", 1)
        w, h = im.size
        bands = len(im.getbands())
        mode = im.mode
        fmt = (im.format or "").lower()
        if mode == "P":  # a palette image is read as the colours it shows, as _read_pil does
            bands = 4 if "transparency" in im.info else 3
    if bands == 2 and mode in ("LA", "La"):
        bands = 1  # the alpha of a grey image carries no intensity
    if mode == "CMYK":
        bands = 3  # read as RGB
    if frames > 1:
        # a multi-page TIFF is a stack of slices: a 3D volume (pages, rows, cols)
        return Header(path, fmt, (frames, h, w), bands, (1.0, 1.0, 1.0), mode, np.eye(4), None,
                      {"mode": mode})
    return Header(path, fmt, (h, w), bands, (1.0, 1.0), mode, np.eye(4), None, {"mode": mode})


def read_header(path: Path | str) -> Header:
    """Geometry of ``path`` without reading its voxels; DataError naming the file if unusable."""
    path = Path(path)
    ext = file_ext(path)
    try:
        if ext in NIFTI_EXTS:
            return _nifti_header(path)
        if ext in NPY_EXTS:
            return _npy_header(path)
        if ext in IMAGE_EXTS:
            return _pil_header(path)
    except DataError:
        raise
    except Exception as exc:  # nibabel, numpy and PIL raise many types for broken files
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {exc})", path) from exc
    raise DataError(f"{path}: unsupported file type; supported: {', '.join(SUPPORTED_EXTS)}", path)


def _native_float32(arr: np.ndarray) -> np.ndarray:
    # torch.from_numpy refuses big-endian arrays: a copy to native float32 fixes that and
    # detaches the result from a read-only memory map
    return np.array(arr, dtype=np.float32)


def _read_nifti(path: Path, header: Header) -> np.ndarray:
    img = nib.load(str(path))
    # get_fdata applies scl_slope / scl_inter and returns native-endian floats
    arr = img.get_fdata(dtype=np.float32, caching="unchanged")
    return arr.reshape(header.spatial_shape + ((header.channels,) if header.channels > 1 else ()))


def _read_pil(path: Path, header: Header) -> np.ndarray:
    from PIL import Image, ImageSequence

    def frame_array(frame: "Image.Image") -> np.ndarray:
        if frame.mode == "P":
            frame = frame.convert("RGBA" if "transparency" in frame.info else "RGB")
        if frame.mode in ("LA", "La"):
            frame = frame.convert("L")
        if frame.mode == "CMYK":
            frame = frame.convert("RGB")
        return np.asarray(frame).astype(np.float32)

    with Image.open(path) as im:
        if header.dims == 3:
            return np.stack([frame_array(f) for f in ImageSequence.Iterator(im)])
        return frame_array(im)


def read_image_file(path: Path | str, header: Optional[Header] = None
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read one file: (native float32 array, 4x4 affine, meta).

    The array keeps the file's axis order with channels last when there are several: NIfTI
    (x, y, z[, c]) with scl_slope/scl_inter applied, .npy as stored, 2D images (rows, cols[, c]).
    ``meta`` holds the Header fields (format, spatial_shape, channels, spacing, dtype on disk,
    axcodes) so callers need not read the header twice; pass ``header`` if you already have it.
    """
    path = Path(path)
    header = header if header is not None else read_header(path)
    try:
        if header.fmt.startswith("nifti"):
            arr = _read_nifti(path, header)
        elif header.fmt == "npy":
            arr = _native_float32(np.load(path, mmap_mode="r", allow_pickle=False))
        else:
            arr = _read_pil(path, header)
    except Exception as exc:
        raise DataError(f"{path}: cannot read voxel data ({type(exc).__name__}: {exc})", path) from exc
    meta = {"header": header, "format": header.fmt, "spatial_shape": header.spatial_shape,
            "channels": header.channels, "spacing": header.spacing, "dtype": header.dtype,
            "axcodes": header.axcodes}
    return arr, header.affine, meta


def to_ras(arr: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorder/flip the first three axes so they point R, A, S (nibabel's closest canonical).

    Works on arrays with trailing channel axes; returns a view where possible and the new affine.
    """
    current = ornt.io_orientation(affine)
    if np.array_equal(current, ornt.axcodes2ornt(("R", "A", "S"))):
        return arr, affine
    transform = ornt.ornt_transform(current, ornt.axcodes2ornt(("R", "A", "S")))
    out = ornt.apply_orientation(arr, transform)
    new_affine = affine @ ornt.inv_ornt_aff(transform, arr.shape[:3])
    return out, new_affine


def ras_axes(header: Header, values: tuple) -> tuple:
    """Per-axis ``values`` (shape, spacing) of a volume reordered as after ``to_ras``."""
    if header.dims != 3 or header.axcodes is None:
        return tuple(values)
    current = ornt.io_orientation(header.affine)
    transform = ornt.ornt_transform(current, ornt.axcodes2ornt(("R", "A", "S")))
    out = list(values)
    for src_axis, (dst_axis, _flip) in enumerate(transform):
        out[int(dst_axis)] = values[src_axis]
    return tuple(out)


def ras_spacing(header: Header) -> tuple[float, ...]:
    """Spacing of a volume's axes after reorientation to RAS (the file's own for 2D)."""
    return ras_axes(header, header.spacing)
