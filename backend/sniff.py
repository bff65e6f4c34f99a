"""What an uploaded file is, judged by its content; its extension must agree.

Only headers are parsed here (nibabel for NIfTI-1/2, numpy's own header reader for .npy, Pillow
for 2D images). Sizes a header declares are bounded *before* any data is inflated or decoded.
"""
from __future__ import annotations

import ast
import dataclasses
import io
import math
import struct
from typing import Optional

import nibabel as nib
import numpy as np

MAX_CHANNELS = 16

# extension -> format; longest first so ".nii.gz" wins over ".gz"
EXTENSIONS: list[tuple[str, str]] = [
    (".nii.gz", "nifti-gz"), (".nii", "nifti"), (".npy", "npy"), (".png", "png"),
    (".jpeg", "jpeg"), (".jpg", "jpeg"), (".tiff", "tiff"), (".tif", "tiff")]
NIFTI1_HEADER, NIFTI2_HEADER = 348, 540


class Rejected(Exception):
    """An upload refused with an HTTP status and a reason that names no server path."""

    def __init__(self, status: int, reason: str):
        self.status, self.reason = status, reason
        super().__init__(reason)


@dataclasses.dataclass
class FileInfo:
    kind: str  # "3d" / "2d"
    format: str
    shape: list[int]
    spacing: Optional[list[float]]
    dtype: str
    channels: int
    # NIfTI only: the voxel-to-world matrix (a label is checked against its image's) and, for
    # volumes, its axis codes ("RAS", "LPS"...), shown in the file table
    affine: Optional[list[list[float]]] = None
    orientation: Optional[str] = None


@dataclasses.dataclass
class Limits:
    max_dim: int
    max_voxels: int
    max_decompressed_bytes: int


def format_from_name(name: str) -> str:
    lower = name.lower()
    for ext, fmt in EXTENSIONS:
        if lower.endswith(ext):
            return fmt
    raise Rejected(415, "unsupported file type; expected .nii, .nii.gz, .npy, .png, .jpg, .jpeg, .tif or .tiff")


def magic_format(head: bytes) -> Optional[str]:
    """The format the first bytes show (gzip reported as 'gzip'); None when unknown."""
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:6] == b"\x93NUMPY":
        return "npy"
    if nifti_version(head):
        return "nifti"
    return None


def nifti_version(head: bytes) -> int:
    """1 or 2 for a single-file NIfTI header (either byte order), else 0."""
    if len(head) >= NIFTI1_HEADER:
        for order in "<>":
            if struct.unpack(order + "i", head[:4])[0] == NIFTI1_HEADER and head[344:348] in (b"n+1\x00", b"ni1\x00"):
                return 1
    if len(head) >= 12:
        for order in "<>":
            if struct.unpack(order + "i", head[:4])[0] == NIFTI2_HEADER and head[4:8] in (b"n+2\x00", b"ni2\x00"):
                return 2
    return 0


def check_magic(fmt: str, head: bytes) -> None:
    """415 when the content is not what the extension says (e.g. a PNG named .nii.gz)."""
    want = "gzip" if fmt == "nifti-gz" else fmt
    got = magic_format(head)
    if got == want:
        return
    shown = {"gzip": "gzip data", None: "unrecognised data"}.get(got, f"a {got} file")
    raise Rejected(415, f"content is {shown}, but the name says {fmt}")


def _bound_shape(shape: list[int], limits: Limits, channels: int) -> None:
    if any(s < 1 for s in shape):
        raise Rejected(422, f"shape {shape} has an empty dimension")
    if max(shape) > limits.max_dim:
        raise Rejected(413, f"shape {shape} exceeds the largest allowed side {limits.max_dim}")
    if math.prod(shape) * channels > limits.max_voxels:
        raise Rejected(413, f"shape {shape} exceeds the voxel limit {limits.max_voxels}")


def split_shape(shape: list[int], what: str, nifti: bool) -> tuple[list[int], int]:
    """(spatial shape, channels), as the engine's reader (ddpm.data.io) sees the array.

    NIfTI: trailing size-1 axes dropped, (x, y, z, 1, c) read as c channels, (x, y) and
    (x, y, 1) are 2D slices. .npy: (H, W) 2D, (D, H, W) 3D, (D, H, W, C) 3D with channels.
    """
    dims = list(shape)
    if nifti:
        if len(dims) == 5 and dims[3] == 1:
            dims = dims[:3] + [dims[4]]
        while len(dims) > 3 and dims[-1] == 1:
            dims.pop()
        if len(dims) == 3 and dims[2] == 1:
            dims = dims[:2]
    if len(dims) in (2, 3):
        spatial, channels = dims, 1
    elif len(dims) == 4:
        spatial, channels = dims[:3], dims[3]
    else:
        raise Rejected(422, f"{what} has shape {shape}; expected 2D (H, W), 3D (D, H, W) "
                            "or 4D (D, H, W, C)")
    if channels > MAX_CHANNELS:
        raise Rejected(422, f"{what} has {channels} channels in its 4th dimension (at most {MAX_CHANNELS}; "
                            "a time series is not a volume)")
    return spatial, channels


def _record_shape(spatial: list[int], channels: int) -> list[int]:
    return spatial + ([channels] if channels > 1 else [])


def parse_nifti_header(head: bytes, limits: Limits) -> tuple[FileInfo, int]:
    """(FileInfo, bytes the file must hold = data offset + data size) from the first 540 bytes."""
    version = nifti_version(head)
    if not version:
        raise Rejected(415, "not a NIfTI-1/2 image (bad header size or magic)")
    magic = head[344:348] if version == 1 else head[4:8]
    if magic in (b"ni1\x00", b"ni2\x00"):
        raise Rejected(415, "NIfTI header/image pair (.hdr/.img) is not supported; upload a single .nii/.nii.gz")
    klass = nib.Nifti1Header if version == 1 else nib.Nifti2Header
    size = NIFTI1_HEADER if version == 1 else NIFTI2_HEADER
    if len(head) < size:
        raise Rejected(422, "truncated NIfTI header")
    try:
        hdr = klass.from_fileobj(io.BytesIO(head[:size]), check=True)
        shape = [int(s) for s in hdr.get_data_shape()]
        dtype = hdr.get_data_dtype()
        offset = int(hdr.get_data_offset())
        zooms = [float(z) for z in hdr.get_zooms()[:3]]
        affine = hdr.get_best_affine()
    except Rejected:
        raise
    except Exception as exc:  # noqa: BLE001 - nibabel raises several types for bad headers
        raise Rejected(422, f"invalid NIfTI header: {str(exc).splitlines()[0][:200]}") from None
    if not shape:
        raise Rejected(422, "NIfTI header declares no dimensions")
    if dtype.kind not in "biuf":  # RGB24 / complex voxels: no single intensity (the engine agrees)
        raise Rejected(415, f"NIfTI data type {dtype} is not a real number type; store intensities "
                            "as integers or floats")
    spatial, channels = split_shape(shape, "NIfTI image", nifti=True)
    _bound_shape(spatial, limits, channels)
    nbytes = math.prod(shape) * dtype.itemsize
    end = max(offset, size) + nbytes
    if end > limits.max_decompressed_bytes:
        raise Rejected(413, f"image data of {end} bytes exceeds the limit {limits.max_decompressed_bytes}")
    zooms = zooms[: len(spatial)]
    spacing = zooms if all(math.isfinite(z) and z > 0 for z in zooms) else None
    finite = bool(np.all(np.isfinite(affine)))
    info = FileInfo(kind=f"{len(spatial)}d", format="nifti", shape=_record_shape(spatial, channels),
                    spacing=spacing, dtype=str(dtype), channels=channels,
                    affine=[[float(x) for x in row] for row in affine] if finite else None,
                    orientation=_axcodes(affine) if finite and len(spatial) == 3 else None)
    return info, end


def _axcodes(affine: np.ndarray) -> Optional[str]:
    """'RAS', 'LPS'...: the anatomical direction each voxel axis points to; None if degenerate."""
    try:
        codes = nib.aff2axcodes(affine)
    except Exception:  # noqa: BLE001 - a singular affine has no orientation
        return None
    return "".join(codes) if all(codes) else None


def parse_npy_header(head: bytes, file_size: int, limits: Limits) -> FileInfo:
    """The .npy header (versions 1-3), checked against the file size; no pickle, ever."""
    if head[:6] != b"\x93NUMPY" or len(head) < 10:
        raise Rejected(415, "not a .npy file")
    major = head[6]
    if major == 1:
        hlen, start = struct.unpack("<H", head[8:10])[0], 10
    elif major in (2, 3):
        if len(head) < 12:
            raise Rejected(422, "truncated .npy header")
        hlen, start = struct.unpack("<I", head[8:12])[0], 12
    else:
        raise Rejected(415, f"unsupported .npy version {major}")
    if hlen > 65536 or len(head) < start + hlen:
        raise Rejected(422, "truncated or oversized .npy header")
    try:
        meta = ast.literal_eval(head[start:start + hlen].decode("latin1" if major < 3 else "utf8"))
        dtype = np.dtype(meta["descr"])
        shape = [int(s) for s in meta["shape"]]
        assert isinstance(meta["fortran_order"], bool)
    except Exception:  # noqa: BLE001
        raise Rejected(422, "invalid .npy header") from None
    if dtype.hasobject or dtype.kind not in "biuf" or dtype.fields:
        raise Rejected(415, f".npy dtype {dtype} is not a plain numeric type")
    spatial, channels = split_shape(shape, ".npy array", nifti=False)
    _bound_shape(spatial, limits, channels)
    expected = start + hlen + math.prod(shape) * dtype.itemsize
    if file_size < expected:
        raise Rejected(422, f"truncated .npy data ({file_size} of {expected} bytes)")
    if file_size > expected:
        raise Rejected(422, f".npy file has {file_size - expected} bytes after its data")
    return FileInfo(kind=f"{len(spatial)}d", format="npy", shape=_record_shape(spatial, channels),
                    spacing=None, dtype=str(dtype), channels=channels)


_MODE_DTYPE = {"I": "int32", "F": "float32", "I;16": "uint16", "I;16B": "uint16", "I;16L": "uint16",
               "1": "bool"}


def parse_image(path: str, fmt: str, limits: Limits) -> FileInfo:
    """A PNG/JPEG/TIFF fully decoded once (after bounding its size), so truncation is caught.

    Channels as the engine counts them (bands; the alpha of a grey image dropped); a multi-page
    TIFF is a stack of slices, i.e. a 3D volume (pages, rows, cols).
    """
    from PIL import Image

    want = {"png": "PNG", "jpeg": "JPEG", "tiff": "TIFF"}[fmt]
    try:
        with Image.open(path) as im:
            if im.format != want:
                raise Rejected(415, f"content is {im.format}, but the name says {fmt}")
            w, h = im.size
            mode = im.mode
            channels = len(im.getbands())
            if mode in ("LA", "La"):
                channels = 1
            if mode == "CMYK":
                channels = 3  # the engine reads it as RGB
            frames = int(getattr(im, "n_frames", 1))
            spatial = [frames, h, w] if frames > 1 else [h, w]
            _bound_shape(spatial, limits, len(im.getbands()))
            for i in range(frames):
                im.seek(i)
                im.load()
    except Rejected:
        raise
    except Image.DecompressionBombError:
        raise Rejected(413, "image has too many pixels") from None
    except Exception as exc:  # noqa: BLE001 - truncated / corrupt images raise OSError, SyntaxError...
        raise Rejected(422, f"corrupt or truncated {fmt.upper()}: {type(exc).__name__}") from None
    return FileInfo(kind=f"{len(spatial)}d", format=fmt, shape=_record_shape(spatial, channels), spacing=None,
                    dtype=_MODE_DTYPE.get(mode, "uint8"), channels=channels)
