"""GET /api/jobs/{id}/events: Server-Sent Events from the events table.

Event ids are ``events.id``. Without ``Last-Event-ID`` (or ``?after=``) the stream starts with a
``status`` snapshot of the job (its id = the job's newest event id) and continues with new events;
with one, it replays every event after that id first. ``?after=0`` replays the whole history.

The stream ends once the job is finished and every event up to its terminal ``status`` event is
sent, so ``curl -sN`` returns. A browser's EventSource then reconnects with ``Last-Event-ID``
and gets the events after it (a resumed job's ``queued`` status and what follows), or an empty
stream while the job stays finished.
"""
from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any, AsyncIterator, Optional

from anyio import to_thread
from fastapi import APIRouter, Depends, Header, Query, Request
from sqlalchemy import select
from sse_starlette.sse import EventSourceResponse

from backend.deps import require_token_or_query
from backend.events import events_after, last_event_id
from backend.jobs import TERMINAL, get_job, status_payload
from backend.models import Event
from backend.params import EventIdAfter, JobId, parse_event_id
from backend.reporting import progress_payload
from backend.schemas import ErrorResponse, JobLive

router = APIRouter(tags=["jobs"], dependencies=[Depends(require_token_or_query)])

# Event ids are allocated before commit; on PostgreSQL a lower id can commit after a higher one.
# Each query therefore looks back this many ids and skips the ones already sent.
LOOKBACK_IDS = 200


def _snapshot(factory, job_id: int) -> tuple[int, dict[str, Any]]:  # noqa: ANN001
    with factory() as s:
        job = get_job(s, job_id)  # JobNotFound -> 404
        data = {**status_payload(job), "progress": progress_payload(job.step, job.total, job.it_s, job.eta_s),
                "last_metrics": job.last_metrics, "snapshot": True}
        return last_event_id(s, job_id) or 0, data


def _fetch(factory, job_id: int, after: int) -> list[tuple[int, str, dict]]:  # noqa: ANN001
    with factory() as s:
        return [(e.id, e.type, e.data) for e in events_after(s, job_id, after, limit=500)]


@router.get("/jobs/{job_id}/events", response_class=EventSourceResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "events: progress, metrics, status, sample (data = JSON)"},
                       404: {"model": ErrorResponse}})
async def job_events(job_id: JobId, request: Request,
                     last_event_id_header: Optional[str] = Header(None, alias="Last-Event-ID"),
                     after: EventIdAfter = None):
    app = request.app
    factory, settings, notifier = app.state.session_factory, app.state.settings, app.state.notifier
    start = parse_event_id(last_event_id_header)
    if start is None:
        start = after
    snapshot = None
    if start is None:
        start, snapshot = await to_thread.run_sync(_snapshot, factory, job_id)
        status = snapshot["status"]
    else:
        status = (await to_thread.run_sync(_snapshot, factory, job_id))[1]["status"]  # 404 for an unknown job
    # the job's status as of the newest event sent; status events keep it current
    finished = status in TERMINAL

    async def stream() -> AsyncIterator[dict]:
        nonlocal finished
        cursor = start
        sent: deque[int] = deque(maxlen=4 * LOOKBACK_IDS)
        sent_set: set[int] = set()
        if snapshot is not None:
            yield {"event": "status", "id": str(cursor), "data": json.dumps(snapshot)}
        wake = notifier.register(job_id)
        try:
            while True:
                wake.clear()
                rows = await to_thread.run_sync(_fetch, factory, job_id, max(start, cursor - LOOKBACK_IDS))
                fresh = [r for r in rows if r[0] not in sent_set]
                for ev_id, typ, data in fresh:
                    if len(sent) == sent.maxlen:
                        sent_set.discard(sent[0])
                    sent.append(ev_id)
                    sent_set.add(ev_id)
                    cursor = max(cursor, ev_id)
                    if typ == "status":
                        finished = data.get("status") in TERMINAL
                    yield {"event": typ, "id": str(ev_id), "data": json.dumps(data)}
                if len(rows) >= 500:
                    continue  # a backlog: keep reading before waiting
                if finished:
                    return  # everything up to the terminal status is sent
                with_redis = notifier.connected
                # with Redis a wake-up comes in ms; the slower poll only catches writers without one
                timeout = settings.sse_poll_s * (2 if with_redis else 1)
                try:
                    await asyncio.wait_for(wake.wait(), timeout=timeout)
                except asyncio.TimeoutError:
                    pass
        finally:
            notifier.unregister(job_id, wake)

    return EventSourceResponse(stream(), ping=settings.sse_ping_s, headers={"Cache-Control": "no-cache",
                                                                            "X-Accel-Buffering": "no"})


def loss_curve(rows: list[tuple[int, Optional[float]]]) -> list[tuple[int, float]]:
    """[step, loss] points of progress reports in the order written; a resumed run rewinds to
    its checkpoint, so points after a rewind replace the ones at and beyond its step."""
    points: list[tuple[int, float]] = []
    for step, loss in rows:
        while points and points[-1][0] >= step:
            points.pop()
        if loss is not None:
            points.append((step, loss))
    return points


def _live(factory, job_id: int) -> JobLive:  # noqa: ANN001
    with factory() as s:
        get_job(s, job_id)  # JobNotFound -> 404
        progress = s.scalars(select(Event.data).where(Event.job_id == job_id, Event.type == "progress")
                             .order_by(Event.id))
        rows = [(int(d.get("step") or 0), d.get("loss")) for d in progress]

        def newest(kind: str) -> Optional[dict]:
            return s.scalar(select(Event.data).where(Event.job_id == job_id, Event.type == kind)
                            .order_by(Event.id.desc()).limit(1))

        return JobLive(loss=loss_curve(rows), phase=newest("phase"), run_info=newest("run_info"))


@router.get("/jobs/{job_id}/live", response_model=JobLive, responses={404: {"model": ErrorResponse}})
async def job_live(job_id: JobId, request: Request) -> JobLive:
    """The job page's state after a reload: its training-loss curve so far (the progress events,
    thinned evenly on long runs), its newest phase and the device / precision it runs with."""
    return await to_thread.run_sync(_live, request.app.state.session_factory, job_id)
