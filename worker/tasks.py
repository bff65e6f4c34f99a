"""The Celery tasks of the job kinds (``backend.dispatch.TASK_NAMES``): each carries only a job id.

The job table is the truth. A task first claims its job (one conditional UPDATE); a message for
a job that is not claimable (finished, cancelled, running under a live lease elsewhere: a
redelivery or a duplicate) is acknowledged and ignored.
"""
from __future__ import annotations

import logging
import time
import traceback
from typing import Any

from celery.exceptions import Reject
from sqlalchemy.exc import OperationalError

from backend.dispatch import TASK_NAMES
from backend.jobs import TERMINAL, JobKind, JobStatus
from backend.run_spec import RunSpecError, build_run_spec
from ddpm.run.run_dir import RunPaths
from worker import runtime
from worker.celery_app import app
from worker.joblog import append_log
from worker.report_relay import ReportRelay
from worker.store import JobView
from worker.supervisor import Handover, Outcome, Supervisor

log = logging.getLogger("worker.tasks")

TOO_BIG_PAUSE_S = 2.0


# The database unreachable before the claim: try again later rather than drop the message.
_TASK_OPTIONS = dict(acks_late=True, reject_on_worker_lost=True, ignore_result=True,
                     autoretry_for=(OperationalError,), retry_backoff=2, retry_backoff_max=30,
                     max_retries=20)


@app.task(name=TASK_NAMES[JobKind.train], **_TASK_OPTIONS)
def train(job_id: int) -> str:
    return run_job(int(job_id), JobKind.train)


@app.task(name=TASK_NAMES[JobKind.sample], **_TASK_OPTIONS)
def sample(job_id: int) -> str:
    return run_job(int(job_id), JobKind.sample)


@app.task(name=TASK_NAMES[JobKind.finetune], **_TASK_OPTIONS)
def finetune(job_id: int) -> str:
    return run_job(int(job_id), JobKind.finetune)


@app.task(name=TASK_NAMES[JobKind.study], **_TASK_OPTIONS)
def study(job_id: int) -> str:
    return run_job(int(job_id), JobKind.study)


def run_job(job_id: int, task_kind: str) -> str:
    ctx = runtime.get()
    name = ctx.settings.name
    job = ctx.store.get_job(job_id)
    if job is None:
        log.warning("job %s does not exist (deleted?): message dropped", job_id)
        return "missing"
    if job.kind != task_kind:
        log.warning("job %s is a %s job but came as %s: running it as %s", job_id, job.kind, task_kind, job.kind)
    if ctx.shutting_down.is_set():
        # leaving: hand the message back to the broker for the next worker (not acked)
        raise Reject("worker shutting down", requeue=True)
    if job.gpus > ctx.settings.nproc and job.status not in TERMINAL:
        # a job of more processes than this worker holds (the API let it in for a bigger worker of
        # the queue): back to the broker for that one; the pause keeps a lone small worker from spinning
        log.info("job %s needs %s processes, this worker holds %s: handed back to the queue",
                 job_id, job.gpus, ctx.settings.nproc)
        time.sleep(TOO_BIG_PAUSE_S)
        raise Reject("job needs a bigger worker", requeue=True)
    if not ctx.store.claim(job_id, name):
        log.info("job %s not claimable (status %s): message acknowledged and ignored", job_id, job.status)
        return "ignored"
    ctx.heartbeat.begin(job_id)
    log_path = str(ctx.store.log_path(job_id))
    try:
        job = ctx.store.get_job(job_id) or job
        append_log(log_path, f"[worker {name}] claimed {job.kind} job {job_id} (attempt {job.attempts})")
        try:
            spec = build_run_spec(job, ctx.store.storage, ctx.settings.device.has_gpu)
        except RunSpecError as exc:
            ctx.store.finish(job_id, name, JobStatus.failed, str(exc))
            return JobStatus.failed
        relay = ReportRelay(ctx.store, job_id, log_path, ctx.settings.progress_interval_s, spec.total_steps,
                            RunPaths(spec.paths.run_dir).metrics)
        outcome = Supervisor(ctx, spec, relay).run()
        append_log(log_path, f"[worker {name}] outcome: {outcome.status}"
                             + (f": {outcome.error}" if outcome.error else ""))
        return _apply(ctx, job, outcome)
    except Exception as exc:  # noqa: BLE001 - the job must end, and the worker must go on
        append_log(log_path, f"[worker {name}] internal error:\n{traceback.format_exc()}")
        log.exception("job %s: internal worker error", job_id)
        ctx.store.finish(job_id, name, JobStatus.failed, f"internal worker error: {type(exc).__name__}: {exc}"[:300])
        return JobStatus.failed
    finally:
        ctx.heartbeat.end(job_id)


def _apply(ctx: Any, job: JobView, outcome: Outcome) -> str:
    name = ctx.settings.name
    if outcome.status in TERMINAL:
        if not ctx.store.finish(job.id, name, outcome.status, outcome.error):
            log.warning("job %s: no longer ours when finishing (%s); left as it is", job.id, outcome.status)
        return outcome.status
    if outcome.status is Handover.REQUEUE:
        ctx.store.release(job.id, name)
        return "requeued"
    return outcome.status  # abandoned: the lease is gone, someone else owns the job now
