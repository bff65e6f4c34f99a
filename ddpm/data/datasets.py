"""Torch datasets of preprocessed volumes / images, the file search and the train/val split.

Every file is checked (header only) when a dataset is built, so a bad file is an error at the
start of a run, naming the file, not a crash in a DataLoader worker hours later.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .cache import VolumeCache, default_cache_dir, open_cache
from .io import SUPPORTED_EXTS, DataError, Header, file_ext, read_header
from .preprocess import PreprocessSettings, check_header, output_spacing_for, preprocess_file

if TYPE_CHECKING:
    from ddpm.config import TrainConfig

#: ``progress(what, done, total)``: files checked / hashed so far while a dataset is built
Progress = Callable[[str, int, int], None]

def find_files(root: Path | str, extensions: Sequence[str] = SUPPORTED_EXTS,
               exclude: Sequence[Path | str] = ()) -> list[Path]:
    """Supported files under ``root`` (recursive), hidden files/folders and ``exclude`` skipped,
    sorted by relative path so the order is the same on every machine."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"dataset path {root} does not exist", root)
    if root.is_file():
        return [root] if file_ext(root) in extensions else []
    skip = {Path(p).resolve() for p in exclude}
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames
                             if not d.startswith(".") and (here / d).resolve() not in skip)
        found.extend(here / f for f in filenames
                     if not f.startswith(".") and file_ext(f) in extensions)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def split_files(files: Sequence[Path], val_fraction: float, seed: int,
                root: Optional[Path] = None) -> tuple[list[Path], list[Path]]:
    """Deterministic (train, val) split. Files are ranked by a hash of (seed, relative path), so
    adding files moves few others between splits. At least one val file when there are >= 2
    files and val_fraction > 0; one file serves both; val_fraction 0 evaluates on train files."""
    files = list(files)
    if len(files) <= 1 or val_fraction <= 0:
        return files, list(files)

    def rank(p: Path) -> str:
        rel = p.relative_to(root).as_posix() if root is not None and p.is_relative_to(root) else p.as_posix()
        return hashlib.sha256(f"{seed}:{rel}".encode()).hexdigest()

    n_val = min(len(files) - 1, max(1, round(len(files) * val_fraction)))
    val = set(sorted(files, key=rank)[:n_val])
    return [f for f in files if f not in val], [f for f in files if f in val]


def _median_spacing(spacings: list[tuple[float, ...]], dims: int) -> tuple[float, ...]:
    if not spacings:
        return (1.0,) * dims
    return tuple(float(v) for v in np.median(np.asarray(spacings), axis=0))


class _DiffusionDataset(Dataset):
    dims = 3
    #: extensions searched for when ``files`` is not given; a subclass may widen it. Both kinds
    #: take every supported file, so a PNG among volumes is an error naming it, not skipped.
    extensions: Sequence[str] = SUPPORTED_EXTS

    def __init__(self, path: Path | str, image_size: int = 64, image_channels: int = 1, *,
                 files: Optional[Sequence[Path | str]] = None, split: str = "train",
                 flip: bool = False, keep_aspect: bool = True,
                 clip_percentiles: Optional[Sequence[float]] = (0.5, 99.5),
                 window: Optional[Sequence[float]] = None, cache: bool = True,
                 cache_dir: Optional[Path | str] = None, progress: Optional[Progress] = None):
        self.root = Path(path)
        self.split = split
        self.settings = PreprocessSettings(
            dims=self.dims, image_size=image_size, channels=image_channels, keep_aspect=keep_aspect,
            clip_percentiles=None if clip_percentiles is None else tuple(clip_percentiles),
            window=None if window is None else tuple(window))
        self.image_size, self.channels = image_size, image_channels
        self.flip = bool(flip) and split == "train"  # augmentation never touches held-out data
        cache_path = default_cache_dir(self.root, cache_dir)
        if files is None:
            files = find_files(self.root, self.extensions, exclude=[cache_path])
        self.files = [Path(f) for f in files]
        if not self.files:
            raise DataError(f"no supported files in {self.root} (searched recursively, hidden "
                            f"files and folders skipped); supported: {', '.join(self.extensions)}",
                            self.root)
        # a subclass that reads files its own way is not held to our reader's file checks and
        # gets no cache: the cache stores our reader's output, and would hide edits to its code
        self.custom_reader = self._reader_overridden()
        self._progress = progress
        self.headers: dict[Path, Header] = self._check_files(strict=not self.custom_reader)
        # mm per output voxel, for the affine of generated samples; 2D images have no physical
        # scale that survives PNG export, so they report 1.0
        self.output_spacing = (1.0,) * self.dims if self.dims == 2 else _median_spacing(
            [output_spacing_for(h, self.settings) for h in self.headers.values()], self.dims)
        self._cache: Optional[VolumeCache] = None
        self._keys: dict[Path, str] = {}
        if cache and not self.custom_reader:
            self._cache = open_cache(self.root, cache_dir)
            if self._cache.enabled:
                for i, f in enumerate(self.files):  # content hashes: a large file takes a while
                    self._keys[f] = self._cache.key(f, self.settings)
                    self._report("hashing files", i + 1)
                self._cache.flush()

    # -- construction helpers ----------------------------------------------------------------
    def _reader_overridden(self) -> bool:
        return False

    def _report(self, what: str, done: int) -> None:
        if self._progress is not None:
            self._progress(what, done, len(self.files))

    def _check_files(self, strict: bool = True) -> dict[Path, Header]:
        """Headers of the files; with ``strict`` any unusable file is an error. A custom reader
        may handle files ours cannot, so then the usable ones only inform output_spacing."""
        headers, errors = {}, []
        for i, f in enumerate(self.files):
            try:
                header = read_header(f)
                check_header(header, self.settings)
                headers[f] = header
            except DataError as exc:
                errors.append(str(exc))
            self._report("checking files", i + 1)
        if errors and strict:
            if len(errors) == 1:
                raise DataError(errors[0], self.root)
            # one line (the CLI prints errors as one line), the first few reasons in full
            more = f"; and {len(errors) - 3} more" if len(errors) > 3 else ""
            raise DataError(f"{len(errors)} of {len(self.files)} files in {self.root} cannot be "
                            f"used: " + "; ".join(errors[:3]) + more, self.root)
        return headers

    @classmethod
    def from_config(cls, cfg: "TrainConfig", split: str = "train",
                    files: Optional[Sequence[Path | str]] = None, **overrides: Any):
        ds = cfg.dataset
        kwargs = dict(image_size=ds.image_size, image_channels=ds.image_channels, files=files,
                      split=split, flip=ds.flip, keep_aspect=ds.keep_aspect,
                      clip_percentiles=ds.clip_percentiles,
                      window=ds.intensity.window if ds.intensity is not None else None,
                      cache=ds.cache)
        kwargs.update(overrides)
        return cls(ds.path, **kwargs)

    # -- loading -----------------------------------------------------------------------------
    def _load_default(self, path: Path | str) -> torch.Tensor:
        """Preprocessed file in [0, 1], from the cache when possible."""
        path = Path(path)
        shape = (self.channels,) + (self.image_size,) * self.dims
        key = None
        if self._cache is not None and self._cache.enabled:
            key = self._keys.get(path) or self._cache.key(path, self.settings)
            cached = self._cache.load(key, shape)
            if cached is not None:
                return torch.from_numpy(cached)
        arr = preprocess_file(path, self.settings)
        if key is not None:
            self._cache.store(key, arr)
        return torch.from_numpy(arr)

    def _read(self, path: Path) -> torch.Tensor:
        raise NotImplementedError

    def _checked(self, x: Any, path: Path) -> torch.Tensor:
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(np.array(x, dtype=np.float32))
        want = (self.channels,) + (self.image_size,) * self.dims
        if not isinstance(x, torch.Tensor) or tuple(x.shape) != want:
            what = "(C, D, H, W)" if self.dims == 3 else "(C, H, W)"
            got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
            raise DataError(f"{path}: the reader returned {got}; expected a tensor {what} = {want} "
                            "(image_channels, then image_size per side)", path)
        return x.float()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        path = self.files[index]
        x = self._checked(self._read(path), path)
        if x.requires_grad or x.device.type != "cpu":
            x = x.detach().cpu()
        arr = x.numpy()
        # our reader hands out a fresh array each call, so it may be mapped in place; a custom
        # reader's tensor may be shared (e.g. kept in memory by the subclass): never modify it
        owned = not self.custom_reader
        if self.flip:
            # torch's RNG: DataLoader seeds it per worker, so flips differ across workers
            axes = tuple(d + 1 for d in range(self.dims) if torch.rand(()) < 0.5)
            if axes:
                arr, owned = np.flip(arr, axes), False  # a view: the map below copies it
        # numpy, not torch, for this elementwise map: waking torch's thread pool costs more on a
        # busy machine than the whole cached load (bench/RESULTS.md "engine")
        if owned:
            arr *= 2.0
            arr -= 1.0
            return x
        out = np.multiply(arr, 2.0, dtype=np.float32)
        out -= 1.0
        return torch.from_numpy(out)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} files from {self.root}, split={self.split}, "
                f"size={self.image_size}, channels={self.channels})")


class Volume3DDiffusionDataset(_DiffusionDataset):
    """3D volumes as float32 (C, D, H, W) in [-1, 1]; axes are R, A, S after reorientation.

    Override ``read_volume(path)`` to load files your own way; it must return a (C, D, H, W)
    tensor in [0, 1] of size ``image_size`` per side (the seed note's contract).
    """

    dims = 3
    extensions = SUPPORTED_EXTS

    def read_volume(self, volume_path: Path | str) -> torch.Tensor:
        return self._load_default(volume_path)

    def _reader_overridden(self) -> bool:
        return type(self).read_volume is not Volume3DDiffusionDataset.read_volume

    def _read(self, path: Path) -> torch.Tensor:
        return self.read_volume(path)


class Image2DDiffusionDataset(_DiffusionDataset):
    """2D images as float32 (C, H, W) in [-1, 1]. Override ``read_image(path)`` as for 3D."""

    dims = 2
    extensions = SUPPORTED_EXTS

    def read_image(self, image_path: Path | str) -> torch.Tensor:
        return self._load_default(image_path)

    def _reader_overridden(self) -> bool:
        return type(self).read_image is not Image2DDiffusionDataset.read_image

    def _read(self, path: Path) -> torch.Tensor:
        return self.read_image(path)


DATASETS: dict[str, type[_DiffusionDataset]] = {
    "volume3d": Volume3DDiffusionDataset,
    "image2d": Image2DDiffusionDataset,
}


def build_datasets(cfg: "TrainConfig", dataset_cls: Optional[type[_DiffusionDataset]] = None,
                   progress: Optional[Progress] = None,
                   **overrides: Any) -> tuple[_DiffusionDataset, _DiffusionDataset]:
    """(train, val) datasets for a config; ``dataset_cls`` plugs in a subclass (custom reader).
    ``progress(what, done, total)`` counts the files of both splits as they are checked and hashed."""
    cls = dataset_cls or DATASETS[cfg.dataset.name]
    root = Path(cfg.dataset.path)
    cache_dir = overrides.get("cache_dir")
    files = find_files(root, cls.extensions, exclude=[default_cache_dir(root, cache_dir)])
    if not files:
        raise DataError(f"no supported files in {root} (searched recursively, hidden files and "
                        f"folders skipped); supported: {', '.join(cls.extensions)}", root)
    train_files, val_files = split_files(files, cfg.dataset.val_fraction, cfg.seed, root)
    def counted(offset: int) -> Optional[Progress]:
        if progress is None:
            return None
        return lambda what, done, _total: progress(what, offset + done, len(files))

    train = cls.from_config(cfg, "train", train_files, progress=counted(0), **overrides)
    val = cls.from_config(cfg, "val", val_files, progress=counted(len(train_files)), **overrides)
    return train, val
