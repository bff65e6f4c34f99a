"""The job's log file (DATA_DIR/runs/<job id>/job.log, served at GET /api/jobs/{id}/log).

The child appends the engine's output and tracebacks; the worker appends its own notes. Both
open with O_APPEND and write whole lines, so their lines never tear each other.
"""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Union


def append_log(path: Union[str, Path], line: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    data = f"{stamp} {line.rstrip()}\n".encode("utf-8", "replace")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
