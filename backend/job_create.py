"""Turn a POST /api/jobs body into a queued job row: check it against the database, fill the
server's paths and pick the queue. The body itself was validated by its schema (the train
config is ``ddpm.config.TrainConfig``); what is checked here needs the database, or, like the
split of the batch across ``gpus`` processes, more than the config alone. A resumed job passes
the same process-count checks (``requeue_target``), so neither waits forever in a queue."""
from __future__ import annotations

from typing import Optional

from sqlalchemy.orm import Session

from backend.capacity import capacity_problem
from backend.dispatch import Queue, queue_for, choose_device
from backend.jobs import JobKind, JobStatus
from backend.models import READY, Dataset, Job
from backend.run_spec import SampleParams, with_server_paths
from backend.schemas import SampleJobCreate, TrainJobCreate
from backend.settings import Settings
from backend.storage import Storage
from backend.worker_registry import live_workers
from ddpm.config import TrainConfig, batch_split_problems, config_to_dict


class JobInputError(ValueError):
    """422: ``items`` are {"loc", "msg"} dicts naming each bad field."""

    def __init__(self, items: list[dict[str, str]]):
        self.items = items
        super().__init__("; ".join(f"{i['loc']}: {i['msg']}" for i in items))


def _err(loc: str, msg: str) -> JobInputError:
    return JobInputError([{"loc": loc, "msg": msg}])


def live_queues(session: Session, settings: Settings) -> set[str]:
    return {q for w in live_workers(session, settings.worker_heartbeat_timeout_s) for q in (w.queues or [])}


def _dataset_problems(ds: Dataset | None, dataset_id: int, config: TrainConfig) -> list[dict[str, str]]:
    if ds is None:
        return [{"loc": "dataset_id", "msg": f"dataset {dataset_id} does not exist"}]
    if ds.status != READY:
        return [{"loc": "dataset_id", "msg": f"dataset {ds.id} is {ds.status}; commit it first"}]
    want_3d = ds.kind == "3d"
    if config.is_3d != want_3d:
        return [{"loc": "config.is_3d", "msg": f"dataset {ds.id} holds {ds.kind.upper()} data; "
                                               f"set is_3d to {str(want_3d).lower()}"}]
    if want_3d and ds.channels and config.dataset.image_channels != ds.channels:
        return [{"loc": "config.dataset.image_channels", "msg": f"dataset {ds.id} has {ds.channels} channel(s)"}]
    return []


def create_train_job(session: Session, settings: Settings, storage: Storage, body: TrainJobCreate) -> Job:
    problems = _dataset_problems(session.get(Dataset, body.dataset_id), body.dataset_id, body.config)
    if problems:
        raise JobInputError(problems)
    config = with_server_paths(body.config, storage, body.dataset_id)
    queue = queue_for(choose_device(body.device, config.gpu), live_queues(session, settings))
    problems = process_problems(session, settings, queue, body.gpus, config.dataset.batch_size)
    if problems:
        raise JobInputError(problems)
    job = Job(kind=JobKind.train, status=JobStatus.queued, device=body.device, queue=queue, gpus=body.gpus,
              dataset_id=body.dataset_id, config=config_to_dict(config), total=config.model.iterations)
    session.add(job)
    session.commit()
    return job


def process_problems(session: Session, settings: Settings, queue: str, gpus: int,
                     batch_size: Optional[int]) -> list[dict[str, str]]:
    """Why a job of ``gpus`` processes on ``queue`` cannot run: no live worker holds that many,
    or its global batch (None: the job has none) does not split across them (the engine's own
    rule, ``ddpm.config.batch_split_problems``). The batch is checked only against a count some
    worker can hold: a count that must change anyway would make the batch advice wrong."""
    too_big = capacity_problem(session, queue, gpus, settings.worker_heartbeat_timeout_s)
    if too_big:
        return [{"loc": "gpus", "msg": too_big}]
    if batch_size is None:
        return []
    return [{"loc": f"config.{key}", "msg": msg} for key, msg in batch_split_problems(batch_size, gpus)]


def has_checkpoint(job: Job, storage: Storage) -> bool:
    return job.status == JobStatus.succeeded or job.checkpoint_step is not None or storage.find_export(job.id) is not None


def create_sample_job(session: Session, settings: Settings, storage: Storage, body: SampleJobCreate) -> Job:
    src = session.get(Job, body.source_job_id)
    if src is None:
        raise _err("source_job_id", f"job {body.source_job_id} does not exist")
    if src.kind != JobKind.train:
        raise _err("source_job_id", f"job {src.id} is a {src.kind} job; sample from a train job")
    if not has_checkpoint(src, storage):
        raise _err("source_job_id", f"job {src.id} is {src.status} and has no checkpoint yet")
    params = SampleParams(**body.model_dump(include=set(SampleParams.model_fields)))
    # every sampler walks a subset of the timesteps the model was trained on
    n_train = TrainConfig.model_validate(src.config).model.beta_schedule.train.n_timestep
    if params.steps > n_train:
        raise _err("steps", f"at most {n_train}: job {src.id}'s model was trained with {n_train} timesteps "
                            f"(model.beta_schedule.train.n_timestep), and {params.sampler} sampling "
                            "takes at most one step per timestep")
    queue = queue_for(choose_device(body.device), live_queues(session, settings))
    job = Job(kind=JobKind.sample, status=JobStatus.queued, device=body.device, queue=queue, dataset_id=None,
              source_job_id=src.id, config=params.model_dump(mode="json"), total=params.num_samples)
    session.add(job)
    session.commit()
    return job


def _engine_config(job: Job) -> dict:
    """The engine config stored with a train, fine-tune or study job ({} for a sample job)."""
    if job.kind == JobKind.train:
        return job.config or {}
    if job.kind in (JobKind.finetune, JobKind.study):  # stored as backend.run_spec.FinetuneParams
        return (job.config or {}).get("config") or {}
    return {}


def requeue_target(session: Session, settings: Settings, job: Job) -> Queue:
    """A resumed job's queue, chosen again (a GPU worker may have come up since); JobInputError
    with submit's numbers when its ``gpus`` cannot run there (the job stays as it is)."""
    config = _engine_config(job)
    queue = queue_for(choose_device(job.device, config.get("gpu")), live_queues(session, settings))
    batch_size = (config.get("dataset") or {}).get("batch_size")
    problems = process_problems(session, settings, queue, int(job.gpus or 1), batch_size)
    if problems:
        raise JobInputError(problems)
    return queue
