"""Job events: a row in ``events`` (its id is the SSE event id) plus a Redis wake-up.

The row is the truth; the Redis message on ``ddpm:job:<id>`` only wakes SSE listeners early.
The wake-up is sent *after* the session commits (a listener woken before the commit would find
nothing), and a lost wake-up costs at most one DB poll interval (``SSE_POLL_S``).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Iterable, Optional

import redis
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Event

log = logging.getLogger(__name__)

EVENT_TYPES = ("progress", "metrics", "status", "sample", "phase", "run_info")
CHANNEL_PREFIX = "ddpm:job:"
REDIS_URL_KEY = "ddpm_redis_url"  # session.info key, set by db.make_session_factory
_PENDING_KEY = "ddpm_pending_wakeups"

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()
_down_until: dict[str, float] = {}  # url -> monotonic time before which we do not retry
_BACKOFF_S = 5.0


def channel(job_id: int) -> str:
    return f"{CHANNEL_PREFIX}{int(job_id)}"


def redis_client(url: str) -> redis.Redis:
    """A shared, short-timeout client per URL (a down broker must not stall a training step)."""
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
            _clients[url] = client
        return client


def publish_event(session: Session, job_id: int, type: str, data: dict[str, Any]) -> Event:
    """Add an event row to ``session`` (flushed, so ``.id`` is set); the wake-up goes on commit."""
    if type not in EVENT_TYPES:
        raise ValueError(f"event type {type!r} is not one of {EVENT_TYPES}")
    row = Event(job_id=int(job_id), type=type, data=data)
    session.add(row)
    session.flush()
    session.info.setdefault(_PENDING_KEY, set()).add(int(job_id))
    return row


def wake(redis_url: str, job_ids: Iterable[int]) -> None:
    """PUBLISH a wake-up per job; failures are logged, never raised (the DB poll covers them)."""
    if time.monotonic() < _down_until.get(redis_url, 0.0):
        return  # broker was just found down: do not stall every report on a connect timeout
    try:
        client = redis_client(redis_url)
        pipe = client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.publish(channel(job_id), b"1")
        pipe.execute()
    except redis.RedisError as exc:
        _down_until[redis_url] = time.monotonic() + _BACKOFF_S
        log.warning("event wake-up not sent (%s); listeners fall back to polling", exc)


@sa_event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING_KEY, None)
    url = session.info.get(REDIS_URL_KEY)
    if pending and url:
        wake(url, pending)


@sa_event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)


def events_after(session: Session, job_id: int, after_id: int, limit: int = 500) -> list[Event]:
    """Events of ``job_id`` with id > ``after_id``, oldest first."""
    stmt = (select(Event).where(Event.job_id == job_id, Event.id > after_id)
            .order_by(Event.id).limit(limit))
    return list(session.scalars(stmt))


def last_event_id(session: Session, job_id: int) -> Optional[int]:
    stmt = select(Event.id).where(Event.job_id == job_id).order_by(Event.id.desc()).limit(1)
    return session.scalar(stmt)
