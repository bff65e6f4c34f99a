"""Sanitise the relative path of an uploaded file (the browser's ``webkitRelativePath``).

Refused: empty, absolute, drive letters, backslashes, NUL and any control or format character
(e.g. U+202E that hides an extension), ``.``/``..``/empty components, hidden components
(``.DS_Store``, ``.git``), surrounding whitespace, over-long names, too-deep trees. Accepted
paths are NFC-normalised, so two spellings of one name land on one file.
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path

MAX_PATH_BYTES = 1024
MAX_PART_BYTES = 255
MAX_DEPTH = 32
_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafePath(ValueError):
    """The path cannot be stored; the message says why (it never echoes server paths)."""


def sanitize_relative_path(raw: str) -> str:
    if not raw:
        raise UnsafePath("empty path")
    path = unicodedata.normalize("NFC", raw)
    if len(path.encode("utf-8")) > MAX_PATH_BYTES:
        raise UnsafePath(f"path longer than {MAX_PATH_BYTES} bytes")
    for ch in path:
        if ch == "\x00":
            raise UnsafePath("NUL byte in path")
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            raise UnsafePath(f"control or invisible character U+{ord(ch):04X} in path")
    if "\\" in path:
        raise UnsafePath("backslash in path (use '/')")
    if path.startswith("/"):
        raise UnsafePath("absolute path")
    if _DRIVE.match(path):
        raise UnsafePath("drive letter in path")
    parts = path.split("/")
    if len(parts) > MAX_DEPTH:
        raise UnsafePath(f"more than {MAX_DEPTH} folder levels")
    for part in parts:
        if part == "":
            raise UnsafePath("empty path component ('//' or a trailing '/')")
        if part in (".", ".."):
            raise UnsafePath(f"'{part}' component in path")
        if part.startswith("."):
            raise UnsafePath("hidden file or folder (name starts with '.')")
        if part != part.strip():
            raise UnsafePath("path component with leading or trailing whitespace")
        if len(part.encode("utf-8")) > MAX_PART_BYTES:
            raise UnsafePath(f"path component longer than {MAX_PART_BYTES} bytes")
    return path


def safe_join(base: Path, relative: str) -> Path:
    """``base / relative`` after sanitising, guaranteed (after resolving symlinks) inside ``base``."""
    rel = sanitize_relative_path(relative)
    base = base.resolve()
    target = (base / rel).resolve()
    if not target.is_relative_to(base) or target == base:
        raise UnsafePath("path leaves the dataset folder")
    return target
