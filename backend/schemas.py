"""Request and response models of the REST API (they make the OpenAPI document at /docs).

The train config is ``ddpm.config.TrainConfig`` itself and the enums come from where they are
defined (job status and kind: ``backend.jobs``; device and queue: ``backend.dispatch``; sampler:
``ddpm.config``), so /openapi.json describes them and the generated TypeScript client follows.
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

from backend.dispatch import DeviceChoice, Queue
from backend.jobs import JobKind, JobStatus
from backend.params import RowId
from backend.run_spec import FinetuneParams, LabelBudgets, SampleParams, StudyParams
from ddpm.config import ErrorItem, FinetuneConfig, TrainConfig


class ErrorResponse(BaseModel):
    """Every error body: a sentence, or (422) one item per bad field."""

    detail: Union[str, list[ErrorItem]]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: str = Field(..., description="'ok' or 'error'")
    broker: str = Field(..., description="'ok' or 'error'")
    workers: int = Field(..., description="workers that heartbeated within WORKER_HEARTBEAT_TIMEOUT_S")
    live_workers: list["WorkerCapacity"] = Field(..., description=(
        "those workers: what each serves and how many processes one job may run on it"))


class WorkerCapacity(BaseModel):
    """A live worker as /api/health lists it (no token needed: no names, host names or pids;
    GET /api/workers has those)."""

    model_config = ConfigDict(from_attributes=True)
    queues: list[Queue]
    device: str
    gpus: int = Field(..., description="the most processes one job may run on it: its GPUs (one "
                                       "process each), or on a CPU worker its WORKER_NPROC")


class WorkerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    name: str
    queues: list[Queue]
    device: str
    gpus: int = WorkerCapacity.model_fields["gpus"]
    hostname: Optional[str]
    pid: Optional[int]
    current_job_id: Optional[int]
    started_at: dt.datetime
    last_heartbeat: dt.datetime


class DatasetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=200)

    @field_validator("name")
    @classmethod
    def _strip(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("name must not be blank")
        return v


class FileOut(BaseModel):
    id: int
    path: str = Field(..., description="path inside the uploaded folder")
    kind: Literal["2d", "3d"]
    format: str = Field(..., description="nifti, nifti-gz, npy, png, jpeg or tiff")
    shape: list[int] = Field(..., description="3D: [D, H, W] or [D, H, W, C]; 2D: [H, W] or [H, W, C]")
    spacing: Optional[list[float]] = Field(..., description="voxel sizes (NIfTI), else null")
    dtype: str
    channels: int
    size_bytes: int
    created_at: dt.datetime
    url: str = Field(..., description="the file's bytes")
    orientation: Optional[str] = Field(None, description="axis codes of a NIfTI volume from its affine "
                                                         "('RAS', 'LPS'...); null for 2D and other formats")
    role: Optional[Literal["image", "label"]] = Field(
        None, description="its place in a labelled layout (images/ + labels/, imagesTr/ + labelsTr/); "
                          "null outside one")


class DatasetOut(BaseModel):
    id: int
    name: str
    status: Literal["uploading", "ready"]
    kind: Optional[Literal["2d", "3d"]] = Field(..., description="set when committed")
    channels: Optional[int]
    file_count: int
    total_bytes: int
    created_at: dt.datetime
    committed_at: Optional[dt.datetime]
    labelled: bool = Field(False, description="holds label maps (a labelled dataset, for fine-tuning)")


class LabelledPairOut(BaseModel):
    case: str = Field(..., description="the label's file name without extension")
    image: Optional[FileOut] = Field(..., description="null until its image is uploaded")
    label: FileOut
    voxels_per_class: dict[str, int] = Field(..., description="class number -> voxels (pixels in 2D)")


class LabelledOut(BaseModel):
    root: str = Field(..., description="the folder holding images/ and labels/ ('' = the dataset's top)")
    pairs: list[LabelledPairOut]
    classes: list[int] = Field(..., description="class numbers found in the labels, background 0 included")
    voxels_per_class: dict[str, int] = Field(..., description="class number -> voxels over all labels")


class DatasetDetail(DatasetOut):
    files: list[FileOut]
    labelled_data: Optional[LabelledOut] = Field(None, description="pairs and classes; null when unlabelled")


class Progress(BaseModel):
    step: int
    total: int
    fraction: float
    eta_s: Optional[float]
    it_s: Optional[float] = Field(..., description="optimizer steps per second")
    loss: Optional[float] = Field(None, description="training loss averaged since the previous progress "
                                                    "report (progress events of train jobs; null elsewhere)")


class PhaseOut(BaseModel):
    """What a run is doing before and between its steps."""

    phase: str = Field(..., description="starting, preparing data, building model, loading kernels, "
                                        "training, evaluating, sampling, writing")
    done: Optional[int] = Field(None, description="items done in this phase (files), where it counts them")
    total: Optional[int] = Field(None, description="items in this phase")


class RunInfoOut(BaseModel):
    """Facts of the newest (re)start of a run, as the engine logs them."""

    model_config = ConfigDict(extra="allow")
    device: Optional[str] = Field(None, description="the torch device, e.g. cpu or cuda:0")
    precision: Optional[str] = Field(None, description="what runs: fp32, bf16 or fp16")
    precision_reason: Optional[str] = Field(None, description="why, e.g. 'auto: the CPU (...) runs bf16 natively'")
    world_size: Optional[int] = Field(None, description="processes the run started as (1 without torchrun)")


class JobLive(BaseModel):
    """A job page's live view after a reload: the loss curve so far, the phase, the run facts."""

    loss: list[tuple[int, float]] = Field(..., description="[step, training loss] from progress reports, "
                                                           "oldest first (thinned evenly on long runs)")
    phase: Optional[PhaseOut] = Field(..., description="the newest phase; null before the first")
    run_info: Optional[RunInfoOut] = Field(..., description="device and precision of the newest start")


MetricValue = Union[int, float, None]


class MetricOut(BaseModel):
    """One metrics row of a train job, written at each metric step (``model.freq_metrics``).

    Besides the fields below the engine adds others (``val_loss_t<lo>_<hi>`` per timestep bin,
    sample intensity statistics, rates); all values are numbers, null where not finite.
    """

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, MetricValue]
    step: int
    train_loss: Optional[float] = Field(None, description="mean training loss since the last metric step")
    val_loss: Optional[float] = Field(None, description="held-out denoising loss (EMA weights)")
    lr: Optional[float] = Field(None, description="learning rate")
    grad_norm: Optional[float] = Field(None, description="mean gradient norm since the last metric step")


class _JobOutBase(BaseModel):
    id: int
    status: JobStatus
    device: DeviceChoice = Field(..., description="as asked when created")
    queue: Queue = Field(..., description="the Celery queue its task went to")
    gpus: int = Field(..., description="processes the job runs as (its world size): GPUs, or CPU processes "
                                     "on a CPU worker")
    dataset_id: Optional[int]
    source_job_id: Optional[int]
    progress: Progress
    last_metrics: Optional[MetricOut]
    checkpoint_step: Optional[int] = Field(..., description="step of the newest checkpoint on disk")
    error: Optional[str]
    cancel_requested: bool
    worker: Optional[str]
    attempts: int
    created_at: dt.datetime
    started_at: Optional[dt.datetime]
    finished_at: Optional[dt.datetime]


class TrainJobOut(_JobOutBase):
    kind: Literal[JobKind.train]
    config: TrainConfig = Field(..., description="the resolved config (dataset.path and "
                                                 "experiment_path filled in by the server)")


class SampleJobOut(_JobOutBase):
    kind: Literal[JobKind.sample]
    config: SampleParams


class FinetuneJobOut(_JobOutBase):
    kind: Literal[JobKind.finetune]
    config: FinetuneConfig = Field(..., description="the resolved fine-tune config (dataset.path, "
                                                    "experiment_path and pretrained filled in by the server)")
    eval_dataset_id: Optional[int] = FinetuneParams.model_fields["eval_dataset_id"]


class StudyJobOut(FinetuneJobOut):
    kind: Literal[JobKind.study]  # type: ignore[assignment]
    labels: LabelBudgets = StudyParams.model_fields["labels"]
    seeds: int = StudyParams.model_fields["seeds"]


class JobOut(RootModel[Annotated[Union[TrainJobOut, SampleJobOut, FinetuneJobOut, StudyJobOut],
                                 Field(discriminator="kind")]]):
    """A job; its ``config`` follows its ``kind``."""


# A job of several processes (torchrun in the worker's child); the API refuses a count no live
# worker of the job's queue holds (backend.job_create).
GpuCount = Annotated[int, Field(ge=1, le=1024, description=(
    "processes the job runs as, one per GPU (on a CPU worker: CPU processes, gloo); "
    "dataset.batch_size stays the global batch, split across them. Train and fine-tune jobs; a study "
    "runs its fine-tune runs one after another as one process, so it takes 1 only"))]


class TrainJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal[JobKind.train]
    dataset_id: RowId
    config: TrainConfig = Field(..., description="a training config; dataset.path and experiment_path "
                                                 "are filled in by the server")
    device: DeviceChoice = Field(DeviceChoice.auto, description=(
        "gpu: wait for a GPU worker; cpu; auto: a GPU when a GPU worker is up, unless the config "
        "says gpu: -1"))
    gpus: GpuCount = 1


class SampleJobCreate(SampleParams):
    model_config = ConfigDict(extra="forbid")
    kind: Literal[JobKind.sample]
    source_job_id: RowId = Field(..., description="a train job with a checkpoint")
    device: DeviceChoice = Field(DeviceChoice.auto, description="gpu: wait for a GPU worker; cpu; "
                                                                "auto: a GPU when a GPU worker is up")


class FinetuneJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal[JobKind.finetune]
    source_job_id: Optional[RowId] = Field(None, description="a finished train job whose weights are "
                                                          "fine-tuned; null = the same kind of U-Net from "
                                                          "scratch (config.model.unet)")
    dataset_id: RowId = Field(..., description="a labelled dataset (images/ + labels/, or imagesTr/ + labelsTr/)")
    eval_dataset_id: Optional[int] = FinetuneParams.model_fields["eval_dataset_id"]
    config: FinetuneConfig = Field(..., description="a fine-tune config; dataset.path, experiment_path and "
                                                    "pretrained are filled in by the server")
    device: DeviceChoice = TrainJobCreate.model_fields["device"]
    gpus: int = TrainJobCreate.model_fields["gpus"]


class StudyJobCreate(FinetuneJobCreate):
    kind: Literal[JobKind.study]  # type: ignore[assignment]
    source_job_id: RowId = Field(..., description="the finished train job whose weights the pretrained arm "
                                                "fine-tunes (the scratch arm takes its architecture)")
    labels: LabelBudgets = StudyParams.model_fields["labels"]
    seeds: int = StudyParams.model_fields["seeds"]


JobCreate = Annotated[Union[TrainJobCreate, SampleJobCreate, FinetuneJobCreate, StudyJobCreate],
                      Field(discriminator="kind")]


class CaseDice(BaseModel):
    file: str = Field(..., description="the image, relative to the evaluated labelled folder")
    dice: dict[str, float] = Field(..., description="Dice per foreground class")


class Evaluation(BaseModel):
    """Dice of a finished fine-tune job on its evaluation cases (``ddpm evaluate``'s JSON)."""

    mean_dice: float = Field(..., description="mean over foreground classes and cases")
    per_class: dict[str, float] = Field(..., description="class -> mean Dice over cases")
    cases: list[CaseDice]


class PredictionOut(BaseModel):
    """The predicted label map of one evaluation case, beside its image."""

    case: str
    label_url: str = Field(..., description="the label map (.nii.gz with the image's affine, or a 2D PNG)")
    image_url: str = Field(..., description="the image it was predicted from")


class SampleOut(BaseModel):
    id: int
    job_id: int
    index: int
    step: Optional[int] = Field(..., description="training step it was drawn at (train jobs)")
    shape: list[int]
    volume_url: Optional[str] = Field(..., description="the .nii.gz of a 3D sample; null for 2D samples")
    preview_url: Optional[str] = Field(..., description="PNG: a mid-slice of a 3D sample, the 2D sample itself")
    created_at: dt.datetime


class ArmSummary(BaseModel):
    mean: Optional[float] = Field(..., description="mean Dice over seeds; null before any run finished")
    sd: Optional[float] = Field(..., description="sample sd over seeds; null for fewer than two runs")
    n: int


class StudyRow(BaseModel):
    labelled_cases: int
    scratch: ArmSummary
    pretrained: ArmSummary
    gain: Optional[float] = Field(..., description="pretrained mean minus scratch mean (Dice)")


class StudyRunResult(BaseModel):
    arm: Literal["scratch", "pretrained"]
    labelled_cases: int
    seed: int
    mean_dice: float


class StudyOut(BaseModel):
    """A study job's result so far (``ddpm study``'s study.json, without server paths)."""

    budgets: list[int]
    seeds: list[int]
    iterations: int
    complete: bool = Field(..., description="every run trained and evaluated")
    summary: list[StudyRow]
    runs: list[StudyRunResult]
