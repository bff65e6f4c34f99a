"""On-disk cache of preprocessed files, keyed by file content and preprocessing settings.

An entry is ``<cache dir>/<key>.npy`` (float32, the exact output of ``preprocess_file``; a plain
.npy file any tool can open), written atomically, so DataLoader workers or two runs racing on the same file at worst both write it.
Hashing a large dataset's content on every start would cost as much as reading it, so content
hashes are memoised in ``hashes.json`` by (path, size, mtime): a file that changed is re-hashed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from .preprocess import PreprocessSettings

log = logging.getLogger(__name__)

CACHE_DIRNAME = ".ddpm_cache"
CACHE_ENV = "DDPM_CACHE_DIR"
_INDEX = "hashes.json"


def default_cache_dir(root: Path | str, cache_dir: Optional[Path | str] = None) -> Path:
    """``cache_dir`` if given, else $DDPM_CACHE_DIR, else ``<dataset root>/.ddpm_cache``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    root = Path(root)
    return (root if root.is_dir() else root.parent) / CACHE_DIRNAME


def user_cache_dir() -> Path:
    """Fallback for datasets on read-only storage: entries are keyed by content, so one shared
    folder is safe for any number of datasets."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ddpm-studio" / "preprocessed"


def open_cache(root: Path | str, cache_dir: Optional[Path | str] = None) -> "VolumeCache":
    """The cache for a dataset at ``root``; when the default folder beside the data cannot be
    written (read-only dataset), the per-user folder instead. An explicit folder is kept as is."""
    explicit = cache_dir is not None or bool(os.environ.get(CACHE_ENV))
    cache = VolumeCache(default_cache_dir(root, cache_dir))
    if not cache.enabled and not explicit:
        fallback = VolumeCache(user_cache_dir())
        if fallback.enabled:
            log.warning("caching preprocessed files of %s in %s instead", root, fallback.dir)
            return fallback
    return cache


def content_hash(path: Path | str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write_bytes(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class VolumeCache:
    """Preprocessed arrays on disk. Not usable (``enabled`` False) when the folder cannot be
    created or written, e.g. a read-only dataset: loading then works uncached, with a warning."""

    def __init__(self, cache_dir: Path | str):
        self.dir = Path(cache_dir)
        self.enabled = True
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.dir, prefix=".probe", delete=True)
            probe.close()
        except OSError as exc:
            log.warning("preprocessing cache %s is not writable (%s); loading without a cache",
                        self.dir, exc)
            self.enabled = False
        self._hashes: dict[str, dict] = self._read_index() if self.enabled else {}
        self._dirty = False
        self._headers: dict[tuple[int, ...], bytes] = {}  # .npy header bytes per array shape

    # -- content hashes, memoised by stat --------------------------------------------------
    def _read_index(self) -> dict[str, dict]:
        try:
            data = json.loads((self.dir / _INDEX).read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def file_hash(self, path: Path | str) -> str:
        path = Path(path)
        st = path.stat()
        name = str(path.resolve())
        entry = self._hashes.get(name)
        if entry and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
            return entry["sha256"]
        digest = content_hash(path)
        self._hashes[name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
        self._dirty = True
        return digest

    def flush(self) -> None:
        """Write the hash memo (merged with what other processes wrote meanwhile)."""
        if not (self.enabled and self._dirty):
            return
        merged = {**self._read_index(), **self._hashes}
        try:
            _atomic_write_bytes(self.dir / _INDEX, json.dumps(merged).encode())
            self._dirty = False
        except OSError as exc:
            log.warning("could not write %s: %s", self.dir / _INDEX, exc)

    # -- entries ---------------------------------------------------------------------------
    def key(self, path: Path | str, settings: PreprocessSettings) -> str:
        payload = json.dumps({"content": self.file_hash(path), **settings.key_dict()},
                             sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:40]

    def entry_path(self, key: str) -> Path:
        return self.dir / f"{key}.npy"

    def load(self, key: str, shape: tuple[int, ...]) -> Optional[np.ndarray]:
        """The cached array (writable, owned by the caller) or None when missing or unusable.

        Every entry of a dataset has the same .npy header, so it is parsed once per shape and
        then compared as bytes, and the data is read straight into a new array: no np.load
        header parsing (~1 ms) and no copy out of a read-only memory map.
        """
        if not self.enabled:
            return None
        target = self.entry_path(key)
        out = np.empty(shape, dtype=np.float32)
        try:
            with open(target, "rb", buffering=0) as fh:
                size = os.fstat(fh.fileno()).st_size
                header = self._headers.get(shape) or self._learn_header(fh, shape)
                fh.seek(0)
                ok = (header is not None and size == len(header) + out.nbytes
                      and fh.read(len(header)) == header
                      and fh.readinto(memoryview(out).cast("B")) == out.nbytes)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("ignoring unreadable cache entry %s: %s", target, exc)
            return None
        if not ok:  # truncated by a crash before the rename, another shape, not ours
            log.warning("ignoring cache entry %s: not a float32 array of shape %s", target, shape)
            return None
        return out

    def _learn_header(self, fh, shape: tuple[int, ...]) -> Optional[bytes]:
        """The .npy header bytes of a C-order float32 array of ``shape``, as found in ``fh``."""
        try:
            version = np.lib.format.read_magic(fh)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            got_shape, fortran, dtype = read(fh)
        except (ValueError, OSError):
            return None
        if tuple(got_shape) != tuple(shape) or fortran or dtype != np.dtype(np.float32):
            return None
        length = fh.tell()
        fh.seek(0)
        header = fh.read(length)
        self._headers[tuple(shape)] = header
        return header

    def store(self, key: str, arr: np.ndarray) -> None:
        if not self.enabled:
            return
        target = self.entry_path(key)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, np.ascontiguousarray(arr, dtype=np.float32), allow_pickle=False)
            os.replace(tmp, target)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            log.warning("could not write cache entry %s: %s", target, exc)
