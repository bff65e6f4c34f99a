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
from backend.run_spec import SampleParams
from ddpm.config import ErrorItem, TrainConfig


class ErrorResponse(BaseModel):
    """Every error body: a sentence, or (422) one item per bad field."""

    detail: Union[str, list[ErrorItem]]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: str = Field(..., description="'ok' or 'error'")
    broker: str = Field(..., description="'ok' or 'error'")
    workers: int = Field(..., description="workers that heartbeated within WORKER_HEARTBEAT_TIMEOUT_S")


class WorkerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    name: str
    queues: list[Queue]
    device: str
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


class JobOut(RootModel[Annotated[Union[TrainJobOut, SampleJobOut], Field(discriminator="kind")]]):
    """A job; its ``config`` follows its ``kind``."""


class TrainJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal[JobKind.train]
    dataset_id: int
    config: TrainConfig = Field(..., description="a training config; dataset.path and experiment_path "
                                                 "are filled in by the server")
    device: DeviceChoice = Field(DeviceChoice.auto, description=(
        "gpu: wait for a GPU worker; cpu; auto: a GPU when a GPU worker is up, unless the config "
        "says gpu: -1"))


class SampleJobCreate(SampleParams):
    model_config = ConfigDict(extra="forbid")
    kind: Literal[JobKind.sample]
    source_job_id: int = Field(..., description="a train job with a checkpoint")
    device: DeviceChoice = Field(DeviceChoice.auto, description="gpu: wait for a GPU worker; cpu; "
                                                                "auto: a GPU when a GPU worker is up")


JobCreate = Annotated[Union[TrainJobCreate, SampleJobCreate], Field(discriminator="kind")]


class SampleOut(BaseModel):
    id: int
    job_id: int
    index: int
    step: Optional[int] = Field(..., description="training step it was drawn at (train jobs)")
    shape: list[int]
    volume_url: Optional[str] = Field(..., description="the .nii.gz of a 3D sample; null for 2D samples")
    preview_url: Optional[str] = Field(..., description="PNG: a mid-slice of a 3D sample, the 2D sample itself")
    created_at: dt.datetime
