"""A failing data volume answers 507 or 503 naming the cause, never a generic 500.

One mapping for the whole API: an ``OSError`` from a file operation, or the database driver's
equivalent (SQLite's FULL / READONLY / IOERR codes, PostgreSQL's disk-full state), becomes a
status and a sentence. Uploads, commits, job creation and deletes all reach it through the
exception handler in ``backend.errors``; the upload route adds the file's name.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Optional, Union

CANTOPEN = "cantopen"  # SQLite could not open its file (the volume's state tells why)

# errno -> (HTTP status, the cause in words). 507: retrying helps once space is freed;
# 503: the volume itself is unusable until an operator acts.
CAUSES: dict[int, tuple[int, str]] = {
    errno.ENOSPC: (507, "no space left on the server's data volume"),
    errno.EDQUOT: (507, "the server's disk quota is exhausted"),
    errno.EROFS: (503, "the server's data volume is read-only"),
    errno.EIO: (503, "an I/O error on the server's data volume"),
    errno.EACCES: (503, "the server may not write to its data volume (permission denied)"),
    errno.EPERM: (503, "the server may not change its data volume (operation not permitted)"),
    CANTOPEN: (503, "the server cannot open its database file"),
}

# SQLite primary result codes (the low byte of an extended code) as the errno they amount to
_SQLITE_CODES: dict[int, Union[int, str]] = {13: errno.ENOSPC, 8: errno.EROFS, 10: errno.EIO, 14: CANTOPEN}
_PG_DISK_FULL = "53100"


def _driver_errno(exc: BaseException) -> Optional[Union[int, str]]:
    """The errno a database driver's error amounts to, if it is a storage fault."""
    orig = getattr(exc, "orig", exc)  # SQLAlchemy wraps the DB-API exception
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return _SQLITE_CODES.get(code & 0xFF)
    if getattr(orig, "sqlstate", None) == _PG_DISK_FULL:
        return errno.ENOSPC
    return None


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def storage_failure(exc: BaseException, data_dir: Optional[Path] = None) -> Optional[tuple[int, str]]:
    """(status, cause) when ``exc`` is a storage fault the client should hear about, else None.
    With ``data_dir``, a fault on a volume mounted read-only is reported as that (SQLite says only
    "unable to open database file", a rename may say "permission denied")."""
    code = exc.errno if isinstance(exc, OSError) else _driver_errno(exc)
    if code not in CAUSES:
        return None
    if data_dir is not None and CAUSES[code][0] == 503 and _read_only(data_dir):
        code = errno.EROFS
    return CAUSES[code]


def describe(cause: str) -> str:
    """The error body's sentence: the cause and what to do (no server paths)."""
    return f"storage error: {cause}; the request was not carried out, retry once that is fixed"
