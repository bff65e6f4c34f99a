"""The Celery tasks ``ddpm.train`` and ``ddpm.sample``: each carries only a job id.

The job table is the truth. A task first claims its job (one conditional UPDATE); a message for
a job that is not claimable (finished, cancelled, running under a live lease elsewhere: a
redelivery or a duplicate) is acknowledged and ignored.
"""
from __future__ import annotations

import copy
import logging
import traceback
from typing import Any

from celery.exceptions import Reject
from sqlalchemy.exc import OperationalError

from worker import runtime
from worker.celery_app import SAMPLE_TASK, TRAIN_TASK, app
from worker.joblog import append_log
from worker.reporting import Reporter
from worker.store import JobView
from worker.supervisor import Supervisor

log = logging.getLogger("worker.tasks")


# The database unreachable before the claim: try again later rather than drop the message.
_TASK_OPTIONS = dict(acks_late=True, reject_on_worker_lost=True, ignore_result=True,
                     autoretry_for=(OperationalError,), retry_backoff=2, retry_backoff_max=30,
                     max_retries=20)


@app.task(name=TRAIN_TASK, **_TASK_OPTIONS)
def train(job_id: int) -> str:
    return run_job(int(job_id), "train")


@app.task(name=SAMPLE_TASK, **_TASK_OPTIONS)
def sample(job_id: int) -> str:
    return run_job(int(job_id), "sample")


def _uses_gpu(ctx: Any, job: JobView) -> bool:
    """A GPU worker runs a job on its GPU unless the job asked for the CPU."""
    if ctx.settings.device.kind != "cuda" or job.device == "cpu":
        return False
    return job.kind == "sample" or (job.config or {}).get("gpu", 0) != -1


def build_spec(ctx: Any, job: JobView) -> dict:
    """Everything the child needs, as plain data (the child never reads the database)."""
    st = ctx.store.storage
    gpu = _uses_gpu(ctx, job)
    spec: dict = {"job_id": job.id, "kind": job.kind, "log_path": str(st.job_log_path(job.id)),
                  "device": "cuda:0" if gpu else "cpu", "run_dir": str(st.run_dir(job.id)),
                  "data_dir": str(st.root)}
    if job.kind == "train":
        cfg = copy.deepcopy(job.config)
        # The worker decides where things live and which device it is: the first visible GPU
        # is index 0 inside this worker (CUDA_VISIBLE_DEVICES), or -1 for the CPU.
        cfg["experiment_path"] = str(st.runs_dir)
        cfg["gpu"] = 0 if gpu else -1
        if job.dataset_id is not None:
            cfg.setdefault("dataset", {})["path"] = str(st.dataset_files_dir(job.dataset_id))
        spec.update(config=cfg, export_path=str(st.export_path(job.id)))
    else:
        c = job.config or {}
        spec.update(source_run_dir=str(st.run_dir(job.source_job_id)),
                    out_dir=str(st.samples_dir(job.id)), num_samples=int(c.get("num_samples", 1)),
                    sampler=c.get("sampler", "dpmpp2m"), steps=c.get("steps"), seed=int(c.get("seed", 0)))
    return spec


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
    if not ctx.store.claim(job_id, name):
        log.info("job %s not claimable (status %s): message acknowledged and ignored", job_id, job.status)
        return "ignored"
    ctx.heartbeat.begin(job_id)
    log_path = str(ctx.store.log_path(job_id))
    try:
        job = ctx.store.get_job(job_id) or job
        append_log(log_path, f"[worker {name}] claimed {job.kind} job {job_id} (attempt {job.attempts})")
        if job.kind == "sample" and job.source_job_id is None:
            ctx.store.finish(job_id, name, "failed", "the train job this sample job reads was deleted")
            return "failed"
        spec = build_spec(ctx, job)
        total = int(job.config.get("model", {}).get("iterations", 0)) if job.kind == "train" else 0
        reporter = Reporter(ctx.store, job_id, log_path, ctx.settings.progress_interval_s, total)
        outcome = Supervisor(ctx, job_id, spec, reporter).run()
        append_log(log_path, f"[worker {name}] outcome: {outcome.status}"
                             + (f": {outcome.error}" if outcome.error else ""))
        return _apply(ctx, job, outcome)
    except Exception as exc:  # noqa: BLE001 - the job must end, and the worker must go on
        append_log(log_path, f"[worker {name}] internal error:\n{traceback.format_exc()}")
        log.exception("job %s: internal worker error", job_id)
        ctx.store.finish(job_id, name, "failed", f"internal worker error: {type(exc).__name__}: {exc}"[:300])
        return "failed"
    finally:
        ctx.heartbeat.end(job_id)


def _apply(ctx: Any, job: JobView, outcome: Any) -> str:
    name = ctx.settings.name
    if outcome.status in ("succeeded", "failed", "cancelled"):
        if not ctx.store.finish(job.id, name, outcome.status, outcome.error):
            log.warning("job %s: no longer ours when finishing (%s); left as it is", job.id, outcome.status)
        return outcome.status
    if outcome.status == "requeue":
        ctx.store.release(job.id, name)
        return "requeued"
    return outcome.status  # abandoned: the lease is gone, someone else owns the job now
