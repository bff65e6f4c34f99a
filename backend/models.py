"""SQLAlchemy 2 tables shared by the API and the worker.

Types are portable (SQLite and PostgreSQL): JSON, naive-UTC timestamps behind ``UTCDateTime``,
string enums checked in code (``backend.jobs``) rather than database enum types, so a migration
never needs ``ALTER TYPE``.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer,
                        String, Text, TypeDecorator, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class UTCDateTime(TypeDecorator):
    """Stored as naive UTC (portable, string-comparable on SQLite); read back timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Optional[dt.datetime], dialect: Any) -> Optional[dt.datetime]:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime (models.utcnow())")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: Optional[dt.datetime], dialect: Any) -> Optional[dt.datetime]:
        return value.replace(tzinfo=dt.timezone.utc) if value is not None else None


class Base(DeclarativeBase):
    pass


# Dataset states; DELETING: a delete began (backend.deletion), the dataset is gone for every route
UPLOADING, READY, DELETING = "uploading", "ready", "deleting"


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=UPLOADING)
    kind: Mapped[Optional[str]] = mapped_column(String(4), nullable=True)  # "2d" / "3d" once committed
    channels: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    committed_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime, nullable=True)

    files: Mapped[list["DatasetFile"]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan", passive_deletes=True,
        order_by="DatasetFile.path")


class DatasetFile(Base):
    __tablename__ = "dataset_files"
    __table_args__ = (UniqueConstraint("dataset_id", "path", name="uq_dataset_files_path"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(1024))  # relative, sanitised (backend.pathsafe)
    kind: Mapped[str] = mapped_column(String(4))  # "2d" / "3d"
    format: Mapped[str] = mapped_column(String(16))  # nifti, nifti-gz, npy, png, jpeg, tiff
    shape: Mapped[list] = mapped_column(JSON)
    spacing: Mapped[Optional[list]] = mapped_column(JSON, nullable=True)
    dtype: Mapped[str] = mapped_column(String(32))
    channels: Mapped[int] = mapped_column(Integer, default=1)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # computed once at upload (the file never changes afterwards); null where they do not apply
    orientation: Mapped[Optional[str]] = mapped_column(String(8), nullable=True)  # "RAS" (NIfTI volumes)
    affine: Mapped[Optional[list]] = mapped_column(JSON, nullable=True)  # 4x4 (NIfTI)
    # labelled layouts (ddpm.finetune.label_rules): "image" / "label", and the case both share
    label_role: Mapped[Optional[str]] = mapped_column(String(8), nullable=True)
    pair_case: Mapped[Optional[str]] = mapped_column(String(1024), nullable=True)  # "<root>/<case>"
    label_classes: Mapped[Optional[dict]] = mapped_column(JSON, nullable=True)  # labels: {"0": voxels, ...}

    dataset: Mapped[Dataset] = relationship(back_populates="files")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status", "status"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # train / sample
    status: Mapped[str] = mapped_column(String(16))  # see backend.jobs
    device: Mapped[str] = mapped_column(String(8), default="auto")  # auto / cpu / gpu (as asked)
    queue: Mapped[str] = mapped_column(String(16), default="cpu")  # Celery queue it was sent to
    # processes the job runs as (one per GPU; on a CPU worker, CPU processes): its world size
    gpus: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    dataset_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL"), nullable=True, index=True)
    source_job_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True, index=True)
    # train: the resolved TrainConfig dict; sample: {num_samples, sampler, steps, seed}
    config: Mapped[dict] = mapped_column(JSON)
    step: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    eta_s: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    it_s: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    last_metrics: Mapped[Optional[dict]] = mapped_column(JSON, nullable=True)
    checkpoint_step: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    error: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[Optional[str]] = mapped_column(String(200), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # claims so far (re-queues + resumes)
    lease_renewed_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime, nullable=True)


class Metric(Base):
    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metrics_job_step", "job_id", "step"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict] = mapped_column(JSON)  # {train_loss, val_loss, lr, grad_norm, ...}
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Sample(Base):
    __tablename__ = "samples"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    step: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)  # training step, if any
    shape: Mapped[list] = mapped_column(JSON)
    # paths relative to DATA_DIR; volume is a .nii.gz (3D only), preview a .png
    volume_path: Mapped[Optional[str]] = mapped_column(String(1024), nullable=True)
    preview_path: Mapped[Optional[str]] = mapped_column(String(1024), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Worker(Base):
    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    queues: Mapped[list] = mapped_column(JSON, default=list)
    device: Mapped[str] = mapped_column(String(64), default="cpu")
    # the most processes one job may run on it: its GPUs, or WORKER_NPROC on a CPU worker
    gpus: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    hostname: Mapped[Optional[str]] = mapped_column(String(255), nullable=True)
    pid: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    current_job_id: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_heartbeat: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # {"cpu": DeviceFacts as a dict, "cuda": ... or absent}: ddpm.precision_rules, as the worker sees them
    precision_facts: Mapped[Optional[dict]] = mapped_column(JSON, nullable=True)


class Event(Base):
    """One SSE event; the autoincrement id is the SSE ``id`` (Last-Event-ID resumes from it)."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_job_id_id", "job_id", "id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(16))  # progress / metrics / status / sample
    data: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
