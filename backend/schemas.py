"""Request and response models of the REST API (they make the OpenAPI document at /docs)."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

Device = Literal["auto", "cpu", "gpu"]


class ErrorItem(BaseModel):
    loc: str = Field(..., description="dotted key path of the bad field (e.g. config.model.lr, "
                                      "dataset_id) or the file's path")
    msg: str


class ErrorResponse(BaseModel):
    detail: Union[str, list[ErrorItem]]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: str = Field(..., description="'ok' or 'error'")
    broker: str = Field(..., description="'ok' or 'error'")
    workers: int = Field(..., description="workers that heartbeated within WORKER_HEARTBEAT_TIMEOUT_S")


class WorkerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    name: str
    queues: list[str]
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


class DatasetDetail(DatasetOut):
    files: list[FileOut]


class Progress(BaseModel):
    step: int
    total: int
    fraction: float
    eta_s: Optional[float]
    it_s: Optional[float] = Field(..., description="optimizer steps per second")


class JobOut(BaseModel):
    id: int
    kind: Literal["train", "sample"]
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    device: Device
    queue: str
    dataset_id: Optional[int]
    source_job_id: Optional[int]
    config: dict[str, Any] = Field(..., description="train: the resolved config; sample: its parameters")
    progress: Progress
    last_metrics: Optional[dict[str, Any]]
    checkpoint_step: Optional[int] = Field(..., description="step of the newest checkpoint on disk")
    error: Optional[str]
    cancel_requested: bool
    worker: Optional[str]
    attempts: int
    created_at: dt.datetime
    started_at: Optional[dt.datetime]
    finished_at: Optional[dt.datetime]


class TrainJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["train"]
    dataset_id: int
    config: dict[str, Any] = Field(..., description="a training config (ddpm.config); dataset.path and "
                                                    "experiment_path are filled in by the server")
    device: Device = "auto"


class SampleJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["sample"]
    source_job_id: int = Field(..., description="a train job with a checkpoint")
    num_samples: int = Field(4, ge=1, le=256)
    sampler: Literal["ddim", "ddpm", "dpmpp2m"] = "ddim"
    steps: int = Field(50, ge=1, le=10000)
    seed: int = Field(0, ge=0)
    device: Device = "auto"


JobCreate = Annotated[Union[TrainJobCreate, SampleJobCreate], Field(discriminator="kind")]


class MetricOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    step: int


class SampleOut(BaseModel):
    id: int
    job_id: int
    index: int
    step: Optional[int] = Field(..., description="training step it was drawn at (train jobs)")
    shape: list[int]
    volume_url: Optional[str] = Field(..., description="the .nii.gz of a 3D sample; null for 2D samples")
    preview_url: Optional[str] = Field(..., description="PNG: a mid-slice of a 3D sample, the 2D sample itself")
    created_at: dt.datetime
