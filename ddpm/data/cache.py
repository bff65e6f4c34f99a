"""On-disk cache of preprocessed files, keyed by file content and preprocessing settings.

An entry is ``<cache dir>/<key>.npy`` (float32, the exact output of ``preprocess_file``), written
atomically, so DataLoader workers or two runs racing on the same file at worst both write it.
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
        """The cached array (a read-only memory map) or None when missing or unusable."""
        if not self.enabled:
            return None
        target = self.entry_path(key)
        try:
            arr = np.load(target, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # truncated by a crash before the rename, etc.
            log.warning("ignoring unreadable cache entry %s: %s", target, exc)
            return None
        if arr.shape != shape or arr.dtype != np.float32:
            return None
        return arr

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
