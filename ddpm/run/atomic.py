"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never a part.

The data go to ``.<name>.tmp-<pid>`` beside the target, are fsynced, then renamed over the target
with ``os.replace`` (atomic on POSIX), and the folder is fsynced so the rename survives a power
loss. Temporaries match no name the engine reads; ``checkpoint.remove_stale_temporaries`` clears
the ones a crash left behind.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable, Union


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Union[str, Path], write: Callable[[BinaryIO], object]) -> None:
    """Run ``write(file_object)`` into a temporary beside ``path``, fsync, rename over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Union[str, Path], text: str) -> None:
    atomic_write_bytes(path, lambda fh: fh.write(text.encode("utf-8")))
