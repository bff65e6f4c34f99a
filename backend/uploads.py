"""Receive one uploaded file: stream to a temp file, validate by content, then keep or discard.

``UploadSink.write`` is fed the request body in chunks (never the whole file in memory). A
``.nii.gz`` is inflated *while it arrives*, in bounded slices, and the inflated size is capped by
what its NIfTI header declares: a gzip bomb stops after at most header size + 1 MiB of output.
Anything refused raises ``sniff.Rejected`` and the temp file is removed by ``discard``.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import zlib
from pathlib import Path

try:  # ISA-L inflates about twice as fast as zlib: the .nii.gz check is inflate-bound
    from isal import isal_zlib as _inflate_lib
except ImportError:  # same answers, slower (tests run both)
    _inflate_lib = zlib
from typing import Any, Optional

from backend.sniff import (NIFTI2_HEADER, FileInfo, Limits, Rejected, check_magic, parse_image,
                           parse_nifti_header, parse_npy_header)

INFLATE_SLICE = 1 << 20  # bytes of output per zlib call: bounds memory for any input
SLACK_BYTES = 1 << 20  # tolerated inflated bytes beyond what the header declares
HEAD_BYTES = 70_000  # enough for any header we parse (.npy headers are <= 65 KiB)


class GzipNiftiInflater:
    """Inflate a .nii.gz stream incrementally; check header, size and integrity."""

    def __init__(self, limits: Limits, lib: Any = None):
        self.limits = limits
        self._lib = lib or _inflate_lib  # zlib-compatible module (isal_zlib or zlib)
        self._d = self._lib.decompressobj(16 + zlib.MAX_WBITS)
        self.head = bytearray()
        self.out_bytes = 0
        self.info: Optional[FileInfo] = None
        self.expected: Optional[int] = None

    def feed(self, data: bytes) -> None:
        try:
            while data:
                out = self._d.decompress(data, INFLATE_SLICE)
                self._take(out)
                data = self._d.unconsumed_tail
                if self._d.eof:
                    rest = self._d.unused_data
                    if rest and rest.strip(b"\x00"):
                        # a further gzip member (concatenated gzip is still valid gzip)
                        self._d = self._lib.decompressobj(16 + zlib.MAX_WBITS)
                        data = rest
                    else:
                        data = b""
        except (zlib.error, self._lib.error):
            raise Rejected(422, "corrupt gzip data") from None

    def _take(self, out: bytes) -> None:
        if not out:
            return
        self.out_bytes += len(out)
        if self.info is None:
            self.head += out[: NIFTI2_HEADER - len(self.head)]
            if len(self.head) >= NIFTI2_HEADER:
                self._parse_head()
        cap = (self.expected + SLACK_BYTES) if self.expected is not None else self.limits.max_decompressed_bytes
        if self.out_bytes > cap:
            raise Rejected(413, "gzip data inflates beyond the size its NIfTI header declares "
                                "(refused as a gzip bomb)")

    def _parse_head(self) -> None:
        try:
            self.info, self.expected = parse_nifti_header(bytes(self.head), self.limits)
        except Rejected as exc:
            if exc.status == 415:
                raise Rejected(415, "gzip data does not hold a NIfTI image") from None
            raise
        self.info.format = "nifti-gz"

    def finish(self) -> FileInfo:
        if not self._d.eof:
            raise Rejected(422, "truncated gzip stream")
        if self.info is None:
            if len(self.head) >= 348:  # a NIfTI-1 header is 348 bytes: try it
                self._parse_head()
            else:
                raise Rejected(422 if self.out_bytes else 415, "gzip data too short to hold a NIfTI header")
        assert self.info is not None and self.expected is not None
        if self.out_bytes < self.expected:
            raise Rejected(422, f"truncated NIfTI data ({self.out_bytes} of {self.expected} bytes)")
        return self.info


class UploadSink:
    """Temp file + running checks. ``budget_bytes``: what the dataset still has room for."""

    def __init__(self, tmp_dir: Path, fmt: str, limits: Limits, max_file_bytes: int, budget_bytes: int):
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=tmp_dir)
        # "in progress" for backend.housekeeping until discard() (or the process ends): a lock on
        # a descriptor of its own, so closing the file for validation keeps it
        self._lock_fd = os.open(name, os.O_RDONLY)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        self.path = Path(name)
        self._fh = os.fdopen(fd, "wb")
        self.fmt, self.limits = fmt, limits
        self.max_file_bytes, self.budget_bytes = max_file_bytes, budget_bytes
        self.size = 0
        self.head = bytearray()
        self._magic_checked = False
        self._inflater = GzipNiftiInflater(limits) if fmt == "nifti-gz" else None

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_file_bytes:
            raise Rejected(413, f"file larger than the limit of {self.max_file_bytes} bytes")
        if self.size > self.budget_bytes:
            raise Rejected(413, "dataset would exceed its size limit with this file")
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        if not self._magic_checked and len(self.head) >= 16:
            check_magic(self.fmt, bytes(self.head))  # refuse a PNG named .nii.gz before storing it
            self._magic_checked = True
        self._fh.write(data)
        if self._inflater is not None:
            self._inflater.feed(data)

    def finish(self) -> FileInfo:
        """Validate the complete file; returns its description (or raises Rejected)."""
        self._fh.close()
        if self.size == 0:
            raise Rejected(422, "empty file")
        head = bytes(self.head)
        check_magic(self.fmt, head)
        if self._inflater is not None:
            return self._inflater.finish()
        if self.fmt == "nifti":
            info, expected = parse_nifti_header(head, self.limits)
            if self.size < expected:
                raise Rejected(422, f"truncated NIfTI data ({self.size} of {expected} bytes)")
            return info
        if self.fmt == "npy":
            return parse_npy_header(head, self.size, self.limits)
        return parse_image(str(self.path), self.fmt, self.limits)

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._fh.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
