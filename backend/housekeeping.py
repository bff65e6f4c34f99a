"""Leftovers of crashes, removed by every API process at start and then every HOUSEKEEPING_S:
upload temp files (``DATA_DIR/tmp/upload-*.part``) whose upload died with its process, and
deletes a crash interrupted (``backend.deletion.finish_deletes``).

An upload in progress holds an exclusive ``flock`` on its temp file (``backend.uploads``), in
whichever API process receives it; the lock dies with the process. So a part file is removed only
when no live upload holds it *and* it is older than STALE_UPLOAD_S (which covers the instant
between creating the file and locking it).
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path

from anyio import to_thread
from fastapi import FastAPI

from backend.deletion import finish_deletes
from backend.storage import Storage

log = logging.getLogger(__name__)

PART_GLOB = "upload-*.part"


def _held_by_live_upload(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True  # just finished or discarded: nothing to do
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops our lock at once
    return False


def sweep_upload_parts(storage: Storage, min_age_s: float) -> list[str]:
    """Remove abandoned upload temp files; returns their names."""
    removed: list[str] = []
    if not storage.tmp_dir.is_dir():
        return removed
    now = time.time()
    for part in storage.tmp_dir.glob(PART_GLOB):
        with contextlib.suppress(FileNotFoundError):
            if now - part.stat().st_mtime < min_age_s or _held_by_live_upload(part):
                continue
            part.unlink()
            removed.append(part.name)
    return removed


def sweep_once(app: FastAPI) -> None:
    """One round; a failing one (a read-only volume...) is logged, the next round retries."""
    storage: Storage = app.state.storage
    try:
        parts = sweep_upload_parts(storage, app.state.settings.stale_upload_s)
        if parts:
            log.info("removed %d temp file(s) of interrupted uploads", len(parts))
        finished = finish_deletes(app.state.session_factory, storage)
        if finished:
            log.warning("finished deletes a crash interrupted: %s", ", ".join(finished))
    except Exception as exc:  # noqa: BLE001 - never stop the API over leftovers
        log.warning("housekeeping round failed: %s", exc)


async def housekeeping(app: FastAPI) -> None:
    """Every HOUSEKEEPING_S until cancelled (the API's start runs the first round before serving)."""
    while True:
        await asyncio.sleep(app.state.settings.housekeeping_s)
        await to_thread.run_sync(sweep_once, app)
