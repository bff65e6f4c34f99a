"""Jobs: create (train / sample), list, detail, metrics, samples, cancel, resume, delete,
checkpoint and log downloads."""
from __future__ import annotations

import json
from typing import Any, Mapping, Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse
import pydantic_core
from sqlalchemy import Select, Text, cast, select
from sqlalchemy.orm import Session

from backend import deletion
from backend.celery_client import EnqueueError, enqueue_job
from backend.deps import get_app_settings, get_session, get_storage, require_token
from backend.finetune_jobs import create_finetune_job, rest_fields
from backend.job_create import (JobInputError, create_sample_job, create_train_job, requeue_target)
from backend.jobs import (ACTIVE, RESUMABLE, JobKind, JobStatus, ensure_deletable, fail_queued, get_job,
                          request_cancel, resume)
from backend.list_cache import JOB_LISTS
from backend.models import Job, Metric, Sample
from backend.params import JobId, Offset, OptionalDatasetIdQuery, StepAfter
from backend.reporting import progress_payload, sample_urls
from backend.schemas import (ErrorResponse, FinetuneJobCreate, JobCreate, JobOut, MetricOut, SampleJobCreate,
                             SampleOut)
from backend.settings import Settings
from backend.storage import Storage

router = APIRouter(tags=["jobs"], dependencies=[Depends(require_token)])
ERRORS = {404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}}


def job_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """The job's JSON (the JobOut shape) from a jobs-table row mapping."""
    extra = rest_fields(row["kind"], row["config"]) if row["kind"] in (JobKind.finetune, JobKind.study) else {}
    return {"id": row["id"], "kind": row["kind"], "status": row["status"], "device": row["device"],
            "queue": row["queue"], "gpus": row.get("gpus") or 1, "dataset_id": row["dataset_id"], "source_job_id": row["source_job_id"],
            "config": row["config"],
            "progress": progress_payload(row["step"], row["total"], row["it_s"], row["eta_s"]),
            "last_metrics": row["last_metrics"], "checkpoint_step": row["checkpoint_step"],
            "error": row["error"], "cancel_requested": bool(row["cancel_requested"]), "worker": row["worker"],
            "attempts": row["attempts"], "created_at": row["created_at"], "started_at": row["started_at"],
            "finished_at": row["finished_at"], **extra}


_STORED_JSON = ("config", "last_metrics")


def job_rows() -> Select:
    """The jobs table's columns with config and last_metrics as their stored JSON text."""
    plain = [c for c in Job.__table__.columns if c.key not in _STORED_JSON]
    return select(*plain, *(cast(Job.__table__.c[k], Text).label(k) for k in _STORED_JSON))


def job_json(row: Mapping[str, Any]) -> bytes:
    """The job's JSON from a ``job_rows()`` row. Polling asks for it all the time: the stored config
    (~1.5 KB) is spliced in as it is, since decoding it to re-encode it was most of a poll's CPU."""
    config, metrics = row["config"], row["last_metrics"]
    if row["kind"] in (JobKind.finetune, JobKind.study):  # their JSON draws fields from the config
        return pydantic_core.to_json(job_dict({**row, "config": json.loads(config),
                                               "last_metrics": json.loads(metrics) if metrics else None}))
    rest = job_dict({**row, "config": None, "last_metrics": None})
    del rest["config"], rest["last_metrics"]
    return (pydantic_core.to_json(rest)[:-1] + b',"config":' + config.encode() + b',"last_metrics":'
            + (metrics or "null").encode() + b"}")

def job_out(job: Job) -> dict[str, Any]:
    """The job's JSON; the routes declare ``response_model=JobOut``, which checks and documents it."""
    return job_dict({c.key: getattr(job, c.key) for c in Job.__table__.columns})


def sample_out(s: Sample) -> SampleOut:
    return SampleOut(id=s.id, job_id=s.job_id, index=s.index, step=s.step, shape=s.shape,
                     created_at=s.created_at, **sample_urls(s))


def _enqueue(session: Session, settings: Settings, job: Job) -> None:
    try:
        enqueue_job(job, settings.redis_url)
    except EnqueueError:
        # the broker is Redis (REDIS_URL): say so, it is what the operator has to bring back
        fail_queued(session, job.id, "could not enqueue the job: the broker (Redis, REDIS_URL) is unreachable; "
                                     "resume the job once it is back")
        raise HTTPException(503, f"job {job.id} created but not enqueued: the broker (Redis, REDIS_URL) is "
                                 "unreachable; resume it once Redis is back") from None


@router.post("/jobs", status_code=201, response_model=JobOut, response_model_exclude_unset=True,
             responses={422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}})
def create_job(body: JobCreate, session: Session = Depends(get_session),
               settings: Settings = Depends(get_app_settings), storage: Storage = Depends(get_storage)):
    """A train job (dataset + config), a sample job (a train job's weights), a fine-tune job
    (labelled dataset + fine-tune config, from a train job's weights or scratch) or a study job
    (pretrained against scratch over label budgets) in state ``queued``;
    its task (job id only) goes to the ``gpu`` or ``cpu`` queue. 422 names every bad field."""
    try:
        if isinstance(body, SampleJobCreate):
            job = create_sample_job(session, settings, storage, body)
        elif isinstance(body, FinetuneJobCreate):  # fine-tune or study
            job = create_finetune_job(session, settings, storage, body)
        else:
            job = create_train_job(session, settings, storage, body)
    except JobInputError as exc:
        raise HTTPException(422, exc.items) from None
    _enqueue(session, settings, job)
    return job_out(job)


@router.get("/jobs", response_model=list[JobOut])
def list_jobs(request: Request, status: Optional[JobStatus] = None, kind: Optional[JobKind] = None, dataset_id: OptionalDatasetIdQuery = None,
              limit: int = Query(200, ge=1, le=1000), offset: Offset = 0,
              session: Session = Depends(get_session)):
    """Newest first; filter by ``status``, ``kind``, ``dataset_id``. Polled by every open jobs page:
    answers are shared for up to a fifth of a second (backend.list_cache)."""
    stmt = job_rows().order_by(Job.id.desc()).limit(limit).offset(offset)
    if status:
        stmt = stmt.where(Job.status == status)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    if dataset_id is not None:
        stmt = stmt.where(Job.dataset_id == dataset_id)
    # The hot polling route: plain rows, the stored JSON spliced in (test_list_matches_detail
    # keeps it identical to JobOut).
    gzipped = "gzip" in request.headers.get("accept-encoding", "")
    body = JOB_LISTS.get((status, kind, dataset_id, limit, offset), lambda: b"[" + b",".join(
        job_json(r) for r in session.execute(stmt).mappings()) + b"]", gzipped)
    headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"} if gzipped else {}
    return Response(body, media_type="application/json", headers=headers)


@router.get("/jobs/{job_id}", response_model=JobOut, response_model_exclude_unset=True, responses=ERRORS)
def get_job_route(job_id: JobId, session: Session = Depends(get_session)):
    return job_out(get_job(session, job_id))


@router.get("/jobs/{job_id}/metrics", response_model=list[MetricOut], response_model_exclude_unset=True,
            responses=ERRORS)
def job_metrics(job_id: JobId, since_step: StepAfter = -1,
                session: Session = Depends(get_session)):
    """``[{step, train_loss, val_loss, lr, ...}]`` in step order."""
    get_job(session, job_id)
    rows = session.scalars(select(Metric).where(Metric.job_id == job_id, Metric.step > since_step)
                           .order_by(Metric.step, Metric.id))
    return [{"step": m.step, **m.data} for m in rows]


@router.get("/jobs/{job_id}/samples", response_model=list[SampleOut], responses=ERRORS)
def job_samples(job_id: JobId, session: Session = Depends(get_session)):
    get_job(session, job_id)
    rows = session.scalars(select(Sample).where(Sample.job_id == job_id)
                           .order_by(Sample.step, Sample.index, Sample.id))
    return [sample_out(s) for s in rows]


@router.post("/jobs/{job_id}/cancel", status_code=202, response_model=JobOut, response_model_exclude_unset=True,
             responses=ERRORS)
def cancel_job(job_id: JobId, session: Session = Depends(get_session)):
    """A queued job ends ``cancelled`` now; a running one gets ``cancel_requested`` and stops
    (with a checkpoint) within seconds. 409 for finished jobs."""
    return job_out(request_cancel(session, job_id))


@router.post("/jobs/{job_id}/resume", status_code=202, response_model=JobOut, response_model_exclude_unset=True,
             responses={**ERRORS, 422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}})
def resume_job(job_id: JobId, session: Session = Depends(get_session),
               settings: Settings = Depends(get_app_settings)):
    """A cancelled or failed job goes back to ``queued`` and continues from its newest checkpoint.
    422 with the numbers, as at submit, when no live worker can hold its ``gpus`` (it would
    wait in the queue forever); the job then stays as it is."""
    job = get_job(session, job_id)
    queue = job.queue
    if job.status in RESUMABLE:  # a job that cannot be resumed gets resume()'s 409 instead
        try:
            queue = requeue_target(session, settings, job)
        except JobInputError as exc:
            raise HTTPException(422, exc.items) from None
    job = resume(session, job_id)
    job.queue = queue
    session.commit()
    _enqueue(session, settings, job)
    return job_out(job)


@router.delete("/jobs/{job_id}", status_code=204, response_class=Response, responses=ERRORS)
def delete_job(job_id: JobId, session: Session = Depends(get_session), storage: Storage = Depends(get_storage)):
    """204 for a finished job, with its run folder (checkpoints, samples, log); 409 while it is
    queued or running, or while an active sample, fine-tune or study job reads its weights."""
    job = get_job(session, job_id)
    ensure_deletable(job)
    users = list(session.scalars(select(Job.id).where(Job.source_job_id == job_id, Job.status.in_(ACTIVE))))
    if users:
        raise HTTPException(409, f"job {job_id}'s weights are used by active job(s) {users} (sampling or fine-tuning)")
    deletion.delete_job(session, storage, job_id)  # files, then the row: a retry finishes it
    return Response(status_code=204)


@router.get("/jobs/{job_id}/checkpoint", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}},
                             "description": "EMA weights (safetensors; the config in its metadata); of a fine-tune job: the segmenter (`ddpm export` layout 'segmenter')"},
                       **ERRORS})
def job_checkpoint(job_id: JobId, session: Session = Depends(get_session), storage: Storage = Depends(get_storage)):
    job = get_job(session, job_id)
    if job.kind not in (JobKind.train, JobKind.finetune):
        raise HTTPException(404, f"job {job_id} is a {job.kind} job; weights belong to train and fine-tune jobs")
    path = storage.find_export(job_id)
    if path is None:
        raise HTTPException(404, f"job {job_id} has no exported weights yet (written when training ends "
                                 "or is cancelled)")
    return FileResponse(path, media_type="application/octet-stream", filename=f"ddpm-job{job_id}-{'segmenter' if job.kind == JobKind.finetune else 'ema'}.safetensors")


@router.get("/jobs/{job_id}/log", response_class=FileResponse,
            responses={200: {"content": {"text/plain": {}}, "description": "the job's log"}, **ERRORS})
def job_log(job_id: JobId, tail: Optional[int] = Query(None, ge=1, le=16 << 20,
                                                     description="only the last this many bytes"),
            session: Session = Depends(get_session), storage: Storage = Depends(get_storage)):
    """The worker's log of the job (full tracebacks of failures end up here)."""
    get_job(session, job_id)
    path = storage.job_log_path(job_id)
    if not path.is_file():
        raise HTTPException(404, f"job {job_id} has no log yet")
    if tail is not None:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(max(0, size - tail))
            data = fh.read(tail)
        return Response(data.decode("utf-8", errors="replace"), media_type="text/plain; charset=utf-8")
    return FileResponse(path, media_type="text/plain; charset=utf-8", content_disposition_type="inline",
                        filename=f"job{job_id}.log")
