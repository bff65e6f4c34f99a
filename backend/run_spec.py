"""The run spec: everything the engine child needs to run one job, typed and frozen.

The worker builds it once from the job row (``build_run_spec``): the config is validated there,
every path is derived from DATA_DIR there, and the device is decided there (through
``backend.dispatch.choose_device``, the same decision the API used to pick the queue). The
child receives the object itself (pickled by multiprocessing spawn, not validated again) and
reads its fields; it never opens the database.

The server-side paths of a train config (``dataset.path``, ``experiment_path``) are filled once,
when the job is created (``with_server_paths``); the stored config is what the job runs.

Importable without torch, FastAPI or Celery (the API, the worker and the child import it).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Protocol, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backend.dispatch import choose_device, runs_on_gpu
from backend.jobs import JobKind
from backend.params import RowId
from backend.storage import Storage
from ddpm.config import DEFAULT_SAMPLER, FinetuneConfig, Sampler, TrainConfig, describe_errors

GPU_DEVICE = "cuda:0"  # a worker's GPU is the first one it sees (CUDA_VISIBLE_DEVICES)
CPU_DEVICE = "cpu"


class SampleParams(BaseModel):
    """What a sample job draws (the stored config of a sample job)."""

    model_config = ConfigDict(frozen=True)
    num_samples: int = Field(4, ge=1, le=256)
    sampler: Sampler = DEFAULT_SAMPLER
    steps: int = Field(50, ge=1, le=10000, description="denoising steps")
    seed: int = Field(0, ge=0)


class FinetuneParams(BaseModel):
    """What a fine-tune job stores (its ``config`` column): the fine-tune config, with the
    server's paths filled in at creation, and where it is evaluated at the end."""

    model_config = ConfigDict(frozen=True)
    config: FinetuneConfig
    eval_dataset_id: Optional[RowId] = Field(None, description=(
        "a second labelled dataset the finished model is evaluated on (and its predictions "
        "written); null = the held-out split of the dataset (dataset.val_fraction, drawn with seed), "
        "cases it never trained on"))
    eval_data: Optional[str] = Field(None, description="the eval dataset's labelled folder (server path)")


LabelBudgets = list[Annotated[int, Field(ge=1)]]


class StudyParams(FinetuneParams):
    """What a study job stores: pretrained (its source job) against scratch at each label budget."""

    labels: LabelBudgets = Field([1, 2, 4, 8], min_length=1, max_length=16,
                              description="label budgets: labelled cases per fine-tune run")
    seeds: int = Field(3, ge=1, le=10, description="runs per budget and arm: config.seed and the next ones")

    @property
    def run_count(self) -> int:
        return 2 * len(set(self.labels)) * self.seeds


class RunPaths(BaseModel):
    """Where one job's files live under DATA_DIR (``backend.storage`` layout)."""

    model_config = ConfigDict(frozen=True)
    data_dir: Path = Field(..., description="cut from messages shown to users")
    run_dir: Path
    log_path: Path
    export_path: Path = Field(..., description="train: the weights GET /api/jobs/{id}/checkpoint serves")
    samples_dir: Path
    evaluation_path: Path = Field(..., description="fine-tune: eval.json (GET /api/jobs/{id}/evaluation)")
    predictions_dir: Path = Field(..., description="fine-tune: the label maps")
    predictions_manifest: Path = Field(..., description="fine-tune: what GET /api/jobs/{id}/predictions lists")

    @classmethod
    def of(cls, storage: Storage, job_id: int) -> "RunPaths":
        return cls(data_dir=storage.root, run_dir=storage.run_dir(job_id), log_path=storage.job_log_path(job_id),
                   export_path=storage.export_path(job_id), samples_dir=storage.samples_dir(job_id),
                   evaluation_path=storage.evaluation_path(job_id), predictions_dir=storage.predictions_dir(job_id),
                   predictions_manifest=storage.predictions_manifest(job_id))


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True)
    job_id: int
    device: Literal["cuda:0", "cpu"]
    paths: RunPaths


class TrainRunSpec(_Spec):
    kind: Literal[JobKind.train] = JobKind.train
    config: TrainConfig = Field(..., description="as stored, with ``gpu`` set to the decided device")
    nproc: int = Field(1, ge=1, description="processes the run is launched as (the job's gpus): one per "
                                            "GPU from device 0 on, or CPU processes (gloo)")

    @property
    def total_steps(self) -> int:
        return self.config.model.iterations


class SampleRunSpec(_Spec):
    kind: Literal[JobKind.sample] = JobKind.sample
    source_run_dir: Path = Field(..., description="the run dir of the train job whose weights it samples")
    params: SampleParams

    @property
    def total_steps(self) -> int:
        return 0  # the child reports its own total with each progress report


class FinetuneRunSpec(_Spec):
    kind: Literal[JobKind.finetune] = JobKind.finetune
    params: FinetuneParams = Field(..., description="as stored, with ``config.gpu`` set to the decided device")
    nproc: int = TrainRunSpec.model_fields["nproc"]

    @property
    def total_steps(self) -> int:
        return self.params.config.model.iterations


class StudyRunSpec(_Spec):
    kind: Literal[JobKind.study] = JobKind.study
    params: StudyParams = Field(..., description="as stored, with ``config.gpu`` set to the decided device")

    @property
    def total_steps(self) -> int:
        return self.params.run_count * self.params.config.model.iterations


RunSpec = Union[TrainRunSpec, SampleRunSpec, FinetuneRunSpec, StudyRunSpec]


class RunSpecError(ValueError):
    """The job cannot run as stored (its source train job was deleted, its config no longer
    validates); the message is the job's one-line error."""


class JobFields(Protocol):
    """What ``build_run_spec`` reads of a job (a row, or the worker's plain copy of one)."""

    id: int
    kind: str
    device: str
    config: dict
    source_job_id: Optional[int]


def with_server_paths(config: TrainConfig, storage: Storage, dataset_id: int) -> TrainConfig:
    """The config with the dataset's files as ``dataset.path`` and DATA_DIR/runs as
    ``experiment_path``: the one place a job's data paths are filled in (at creation)."""
    dataset = config.dataset.model_copy(update={"path": str(storage.dataset_files_dir(dataset_id))})
    return config.model_copy(update={"experiment_path": str(storage.runs_dir), "dataset": dataset})


def _stored(model: type[BaseModel], job: JobFields) -> Any:
    try:
        return model.model_validate(job.config)
    except ValidationError as exc:  # stored under an older schema
        reasons = "; ".join(f"{loc}: {msg}" for loc, msg in describe_errors(model, exc.errors()))
        raise RunSpecError(f"the job's stored config is not valid any more: {reasons}") from None


def _finetune_spec(job: JobFields, paths: RunPaths, worker_has_gpu: bool) -> RunSpec:
    study = job.kind == JobKind.study
    params = _stored(StudyParams if study else FinetuneParams, job)
    cfg = params.config
    if cfg.pretrained is not None and not Path(cfg.pretrained).exists():
        raise RunSpecError("the train job whose weights this job fine-tunes was deleted")
    gpu = runs_on_gpu(choose_device(job.device, cfg.gpu), worker_has_gpu)
    params = params.model_copy(update={"config": cfg.model_copy(update={"gpu": 0 if gpu else -1})})
    device = GPU_DEVICE if gpu else CPU_DEVICE
    if study:  # its runs go one after another in one process
        return StudyRunSpec(job_id=job.id, device=device, paths=paths, params=params)
    return FinetuneRunSpec(job_id=job.id, device=device, paths=paths, params=params,
                           nproc=int(getattr(job, "gpus", 1) or 1))


def build_run_spec(job: JobFields, storage: Storage, worker_has_gpu: bool) -> RunSpec:
    """The run spec of ``job`` on this worker; ``RunSpecError`` when it cannot run as stored."""
    paths = RunPaths.of(storage, job.id)
    if job.kind in (JobKind.finetune, JobKind.study):
        return _finetune_spec(job, paths, worker_has_gpu)
    if job.kind == JobKind.train:
        try:
            config = TrainConfig.model_validate(job.config)
        except ValidationError as exc:  # stored under an older schema
            reasons = "; ".join(f"{loc}: {msg}" for loc, msg in describe_errors(TrainConfig, exc.errors()))
            raise RunSpecError(f"the job's stored config is not valid any more: {reasons}") from None
        gpu = runs_on_gpu(choose_device(job.device, config.gpu), worker_has_gpu)
        # the engine reads ``gpu``: 0 = this worker's GPU, -1 = the CPU
        config = config.model_copy(update={"gpu": 0 if gpu else -1})
        return TrainRunSpec(job_id=job.id, device=GPU_DEVICE if gpu else CPU_DEVICE, paths=paths, config=config,
                            nproc=int(getattr(job, "gpus", 1) or 1))
    if job.source_job_id is None:
        raise RunSpecError("the train job this sample job reads was deleted")
    gpu = runs_on_gpu(choose_device(job.device), worker_has_gpu)
    return SampleRunSpec(job_id=job.id, device=GPU_DEVICE if gpu else CPU_DEVICE, paths=paths,
                         source_run_dir=storage.run_dir(job.source_job_id),
                         params=SampleParams.model_validate(job.config))

