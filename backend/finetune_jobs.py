"""Fine-tune and study jobs: turn a POST /api/jobs body into a queued job row.

The body's config is a ``ddpm.config.FinetuneConfig`` (validated by its schema); here the parts
that need the database and DATA_DIR are checked and filled in, once: the source train job
becomes ``pretrained`` (its run folder) and its choices (U-Net, input keys) are merged in by
the engine's own ``with_pretrained``, so a key that contradicts them is a 422 naming it; the
labelled dataset becomes ``dataset.path`` (the folder holding images/ + labels/ inside it); an
evaluation dataset becomes ``eval_data``. Torch-free: the pairs are found by the engine's
``find_pairs``, which reads names only.

A fine-tune job's ``gpus`` pass the training job's checks (``job_create.process_problems``: a live
worker must hold them, the batch must split across them); a study runs as one process.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from pydantic import ValidationError
from sqlalchemy.orm import Session

from backend.dispatch import queue_for, choose_device
from backend.job_create import JobInputError, has_checkpoint, live_queues, process_problems
from backend.jobs import JobKind, JobStatus
from backend.models import READY, Dataset, Job
from backend.run_spec import FinetuneParams, StudyParams
from backend.schemas import FinetuneJobCreate, StudyJobCreate
from backend.settings import Settings
from backend.storage import Storage
from ddpm.config import ConfigError, FinetuneConfig, TrainConfig, describe_errors
from ddpm.finetune.label_rules import LAYOUTS, LAYOUTS_TEXT
from ddpm.finetune.labelled import find_pairs



def _err(loc: str, msg: str) -> JobInputError:
    return JobInputError([{"loc": loc, "msg": msg}])


def labelled_root(files_dir: Path) -> list[Path]:
    """The folders under ``files_dir`` (itself included) laid out as a labelled dataset."""
    found = []
    for here, dirs, _ in os.walk(files_dir):
        if any(images in dirs and labels in dirs for images, labels, _ in LAYOUTS):
            found.append(Path(here))
    return sorted(found)


def labelled_folder(session: Session, storage: Storage, dataset_id: int, loc: str, is_3d: bool) -> tuple[Path, int]:
    """The labelled folder of dataset ``dataset_id`` and its number of pairs; JobInputError (at
    ``loc``) naming the dataset's problem: missing, not committed, 2D/3D mismatch, no labelled
    layout, unpaired files."""
    ds = session.get(Dataset, dataset_id)
    if ds is None:
        raise _err(loc, f"dataset {dataset_id} does not exist")
    if ds.status != READY:
        raise _err(loc, f"dataset {ds.id} is {ds.status}; commit it first")
    if ds.kind and (ds.kind == "3d") != is_3d:
        raise _err(loc, f"dataset {ds.id} holds {ds.kind.upper()} data but the model is "
                        f"{'3D' if is_3d else '2D'} (is_3d {str(is_3d).lower()})")
    files_dir = storage.dataset_files_dir(ds.id)
    roots = labelled_root(files_dir)
    if not roots:
        raise _err(loc, f"dataset {ds.id} is not labelled: it needs the folders {LAYOUTS_TEXT}")
    if len(roots) > 1:
        names = ", ".join(r.relative_to(files_dir).as_posix() or "(top)" for r in roots)
        raise _err(loc, f"dataset {ds.id} holds several labelled folders ({names}); upload one per dataset")
    pairs, problems = find_pairs(roots[0])
    prefix = str(files_dir) + os.sep  # server paths never reach a user
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise _err(loc, f"dataset {ds.id}: {problems[0].replace(prefix, '')}{more}")
    if not pairs:
        raise _err(loc, f"dataset {ds.id} has no image/label pairs in its {LAYOUTS_TEXT}")
    return roots[0], len(pairs)


def source_train_config(job: Job) -> TrainConfig:
    """A train job's stored config; JobInputError when it no longer validates (an older schema)."""
    try:
        return TrainConfig.model_validate(job.config)
    except ValidationError as exc:
        reasons = "; ".join(f"{loc}: {msg}" for loc, msg in describe_errors(TrainConfig, exc.errors()))
        raise _err("source_job_id", f"job {job.id}'s config is not valid under the current schema ({reasons})") from None


def _resolve_config(session: Session, storage: Storage, body: FinetuneJobCreate) -> FinetuneConfig:
    """The body's config with the source job's weights and choices merged in (unchanged from scratch)."""
    cfg = body.config
    if cfg.pretrained is not None:
        raise _err("config.pretrained", "set by the server from source_job_id; leave it null")
    if body.source_job_id is None:
        return cfg
    src = session.get(Job, body.source_job_id)
    if src is None:
        raise _err("source_job_id", f"job {body.source_job_id} does not exist")
    if src.kind != JobKind.train:
        raise _err("source_job_id", f"job {src.id} is a {src.kind} job; fine-tune a train job's weights")
    if src.status != JobStatus.succeeded and not has_checkpoint(src, storage):
        raise _err("source_job_id", f"job {src.id} is {src.status} and has no checkpoint yet")
    cfg = cfg.model_copy(update={"pretrained": str(storage.run_dir(src.id))})
    try:
        return cfg.with_pretrained(source_train_config(src))
    except ConfigError as exc:
        raise JobInputError([{"loc": f"config.{key}", "msg": f"{msg} (job {src.id})"}
                             for key, msg in exc.errors]) from None


def create_finetune_job(session: Session, settings: Settings, storage: Storage,
                        body: Union[FinetuneJobCreate, StudyJobCreate]) -> Job:
    if isinstance(body, StudyJobCreate) and body.gpus != 1:
        # its runs (budgets x seeds x two arms) go one after another in one process
        raise _err("gpus", f"gpus {body.gpus} but a study runs as one process; leave gpus at 1 "
                           "(a fine-tune job can run as several)")
    cfg = _resolve_config(session, storage, body)
    root, cases = labelled_folder(session, storage, body.dataset_id, "dataset_id", cfg.is_3d)
    eval_data: Optional[Path] = None
    if body.eval_dataset_id is not None:
        if body.eval_dataset_id == body.dataset_id:
            raise _err("eval_dataset_id", "the evaluation dataset must hold other cases than the training "
                                          "one; leave it null to evaluate on a held-out split")
        eval_data = labelled_folder(session, storage, body.eval_dataset_id, "eval_dataset_id", cfg.is_3d)[0]
    dataset = cfg.dataset.model_copy(update={"path": str(root)})
    cfg = cfg.model_copy(update={"experiment_path": str(storage.runs_dir), "dataset": dataset})
    common = {"config": cfg, "eval_dataset_id": body.eval_dataset_id,
              "eval_data": None if eval_data is None else str(eval_data)}
    if isinstance(body, StudyJobCreate) and max(body.labels) >= cases:
        # the engine checks the exact training split when the job starts; this much is certain now
        raise _err("labels", f"{max(body.labels)} labelled cases: dataset {body.dataset_id} has {cases}, and "
                             "some are held out for validation (and evaluation without an eval dataset)")
    if isinstance(body, StudyJobCreate):
        params: FinetuneParams = StudyParams(**common, labels=sorted(set(body.labels)), seeds=body.seeds)
        total = params.run_count * cfg.model.iterations
    else:
        params = FinetuneParams(**common)
        total = cfg.model.iterations
    queue = queue_for(choose_device(body.device, cfg.gpu), live_queues(session, settings))
    problems = process_problems(session, settings, queue, body.gpus, cfg.dataset.batch_size)
    if problems:
        raise JobInputError(problems)
    job = Job(kind=body.kind, status=JobStatus.queued, device=body.device, queue=queue, gpus=body.gpus,
              dataset_id=body.dataset_id, source_job_id=body.source_job_id, config=params.model_dump(mode="json"),
              total=total)
    session.add(job)
    session.commit()
    return job


def rest_fields(kind: str, stored: dict) -> dict:
    """A fine-tune / study job's REST fields from its stored params (``config`` is the fine-tune
    config itself; the server's evaluation path stays on the server)."""
    out = {"config": stored.get("config"), "eval_dataset_id": stored.get("eval_dataset_id")}
    if kind == JobKind.study:
        out.update(labels=stored.get("labels"), seeds=stored.get("seeds"))
    return out
