"""One Redis pub/sub subscription per API process, fanned out to the SSE listeners.

Listeners ``register`` an asyncio.Event for a job; the subscriber task sets it when a wake-up
for that job arrives. Protocol against lost wake-ups: clear the event, query the DB, then wait
(a wake-up between query and wait leaves the event set). When Redis is down the wait times out
after the poll interval, so events still arrive, just up to ``SSE_POLL_S`` later.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Optional

import redis.asyncio as aioredis

from backend.events import CHANNEL_PREFIX

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, redis_url: str):
        self.redis_url = redis_url
        self._waiters: dict[int, set[asyncio.Event]] = defaultdict(set)
        self._task: Optional[asyncio.Task] = None
        self.connected = False

    def _ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def register(self, job_id: int) -> asyncio.Event:
        self._ensure_started()
        ev = asyncio.Event()
        self._waiters[job_id].add(ev)
        return ev

    def unregister(self, job_id: int, ev: asyncio.Event) -> None:
        waiters = self._waiters.get(job_id)
        if waiters is not None:
            waiters.discard(ev)
            if not waiters:
                self._waiters.pop(job_id, None)

    def _dispatch(self, channel: bytes) -> None:
        try:
            job_id = int(channel.decode()[len(CHANNEL_PREFIX):])
        except ValueError:
            return
        for ev in self._waiters.get(job_id, ()):
            ev.set()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for ev in waiters:
                ev.set()

    async def _run(self) -> None:
        while True:
            client = aioredis.from_url(self.redis_url, socket_connect_timeout=1.0)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.psubscribe(CHANNEL_PREFIX + "*")
                    self.connected = True
                    self._wake_all()  # anything published while we were away: re-query now
                    while True:
                        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                        if msg and msg.get("type") == "pmessage":
                            self._dispatch(msg["channel"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any broker trouble: poll until it is back
                if self.connected:
                    log.warning("SSE wake-ups lost (%s); polling the database until Redis is back", exc)
                self.connected = False
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
