"""A per-process cache of GET /api/jobs answers, kept at most TTL_S seconds.

Fifty browsers polling the jobs page ask the same question many times a second; the answer
(every job with its config, ~90 KB) costs a query, a JSON encode and a gzip each time. Within
TTL_S they share one, compressed once. Any commit in this process (a job created, cancelled,
deleted) drops the cache at once; what other processes write (workers' progress, another API
process) shows up within TTL_S, sooner than the SSE stream's own database poll (SSE_POLL_S).
"""
from __future__ import annotations

import gzip
import threading
import time
from typing import Callable, Hashable, Optional

from sqlalchemy import event
from sqlalchemy.orm import Session

TTL_S = 0.2
MAX_ENTRIES = 64  # distinct filters kept (a UI asks a handful)


class AnswerCache:
    def __init__(self, ttl_s: float = TTL_S):
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[float, bytes, Optional[bytes]]] = {}

    def get(self, key: Hashable, build: Callable[[], bytes], gzipped: bool) -> bytes:
        """The JSON answer for ``key`` (gzip-compressed when ``gzipped``), built when stale."""
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit is None or now - hit[0] >= self.ttl_s:
            hit = (now, build(), None)
        if gzipped and hit[2] is None:
            hit = (hit[0], hit[1], gzip.compress(hit[1], compresslevel=1, mtime=0))
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES and key not in self._entries:
                self._entries.clear()
            self._entries[key] = hit
        return hit[2] if gzipped else hit[1]  # type: ignore[return-value]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


JOB_LISTS = AnswerCache()


@event.listens_for(Session, "after_commit")
def _something_changed(_session: Session) -> None:
    JOB_LISTS.clear()
