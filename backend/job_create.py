"""Turn a POST /api/jobs body into a queued job row: validate, resolve paths and queue."""
from __future__ import annotations

import copy
from typing import Any

from sqlalchemy.orm import Session

from backend.celery_client import choose_queue, live_queues
from backend.jobs import JobStatus
from backend.models import READY, Dataset, Job
from backend.schemas import SampleJobCreate, TrainJobCreate
from backend.settings import Settings
from backend.storage import Storage
from ddpm.config import ConfigError, config_to_dict, load_config


class JobInputError(ValueError):
    """422: ``items`` are {"loc", "msg"} dicts naming each bad field."""

    def __init__(self, items: list[dict[str, str]]):
        self.items = items
        super().__init__("; ".join(f"{i['loc']}: {i['msg']}" for i in items))


def _err(loc: str, msg: str) -> JobInputError:
    return JobInputError([{"loc": loc, "msg": msg}])


def resolve_train_config(raw: dict[str, Any], storage: Storage, dataset_id: int) -> dict[str, Any]:
    """The user's config with ``dataset.path`` (the dataset's files) and ``experiment_path``
    (DATA_DIR/runs; the run dir is runs/<job id>) filled in, validated by ddpm.config."""
    cfg = copy.deepcopy(raw)
    cfg["experiment_path"] = str(storage.runs_dir)
    ds = cfg.setdefault("dataset", {})
    if isinstance(ds, dict):
        ds["path"] = str(storage.dataset_files_dir(dataset_id))
    try:
        return config_to_dict(load_config(cfg))
    except ConfigError as exc:
        raise JobInputError([{"loc": f"config.{loc}" if loc else "config", "msg": msg}
                             for loc, msg in exc.errors]) from None


def create_train_job(session: Session, settings: Settings, storage: Storage, body: TrainJobCreate) -> Job:
    errors: list[dict[str, str]] = []
    ds = session.get(Dataset, body.dataset_id)
    if ds is None:
        errors.append({"loc": "dataset_id", "msg": f"dataset {body.dataset_id} does not exist"})
    elif ds.status != READY:
        errors.append({"loc": "dataset_id", "msg": f"dataset {ds.id} is {ds.status}; commit it first"})
    try:
        config = resolve_train_config(body.config, storage, body.dataset_id)
    except JobInputError as exc:
        raise JobInputError(errors + exc.items) from None
    if ds is not None and ds.status == READY:
        want_3d = ds.kind == "3d"
        if config["is_3d"] != want_3d:
            errors.append({"loc": "config.is_3d", "msg": f"dataset {ds.id} holds {ds.kind.upper()} data; "
                                                         f"set is_3d to {str(want_3d).lower()}"})
        elif want_3d and ds.channels and config["dataset"]["image_channels"] != ds.channels:
            errors.append({"loc": "config.dataset.image_channels",
                           "msg": f"dataset {ds.id} has {ds.channels} channel(s)"})
    if errors:
        raise JobInputError(errors)
    queue = choose_queue(body.device, config.get("gpu", 0),
                         live_queues(session, settings.worker_heartbeat_timeout_s))
    job = Job(kind="train", status=JobStatus.queued, device=body.device, queue=queue, dataset_id=body.dataset_id,
              config=config, total=int(config["model"]["iterations"]))
    session.add(job)
    session.commit()
    return job


def has_checkpoint(job: Job, storage: Storage) -> bool:
    return job.status == JobStatus.succeeded or job.checkpoint_step is not None or storage.find_export(job.id) is not None


def create_sample_job(session: Session, settings: Settings, storage: Storage, body: SampleJobCreate) -> Job:
    src = session.get(Job, body.source_job_id)
    if src is None:
        raise _err("source_job_id", f"job {body.source_job_id} does not exist")
    if src.kind != "train":
        raise _err("source_job_id", f"job {src.id} is a {src.kind} job; sample from a train job")
    if not has_checkpoint(src, storage):
        raise _err("source_job_id", f"job {src.id} is {src.status} and has no checkpoint yet")
    params = {"num_samples": body.num_samples, "sampler": body.sampler, "steps": body.steps, "seed": body.seed}
    if body.sampler == "ddpm":
        n_train = int(src.config.get("model", {}).get("beta_schedule", {}).get("train", {}).get("n_timestep", 0))
        if n_train and body.steps > n_train:
            raise _err("steps", f"ddpm sampling takes at most the {n_train} training timesteps")
    queue = choose_queue(body.device, int(src.config.get("gpu", 0)),
                         live_queues(session, settings.worker_heartbeat_timeout_s))
    job = Job(kind="sample", status=JobStatus.queued, device=body.device, queue=queue, dataset_id=None,
              source_job_id=src.id, config=params, total=body.num_samples)
    session.add(job)
    session.commit()
    return job


def requeue_target(session: Session, settings: Settings, job: Job) -> str:
    """A resumed job's queue, chosen again (a GPU worker may have come up since)."""
    gpu = int(job.config.get("gpu", 0)) if job.kind == "train" else 0
    return choose_queue(job.device, gpu, live_queues(session, settings.worker_heartbeat_timeout_s))
