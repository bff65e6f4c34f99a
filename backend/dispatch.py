"""How a job reaches a worker: the Celery task of each job kind, the queues, and the one place
the job's device is decided.

Two knobs say where a job runs: ``device`` of the job request (auto / cpu / gpu) and, for train
jobs, the config's ``gpu`` (-1 = CPU). ``choose_device`` folds them into one choice; the API
picks the queue from it (``queue_for``) and the worker the child's device (``runs_on_gpu``).
Torch-free, Celery-free: the API, the worker and its engine child all import it.
"""
from __future__ import annotations

from enum import StrEnum
from typing import Iterable, Optional

from backend.jobs import JobKind


class Queue(StrEnum):
    """The Celery queues; a worker serves one or both (WORKER_QUEUES)."""

    gpu = "gpu"
    cpu = "cpu"


class DeviceChoice(StrEnum):
    """Where a job may run: ``gpu`` or ``cpu`` as asked, ``auto`` = a GPU when one is free."""

    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"


# The task a job's message names; it carries only the job id (the job table is the truth).
TASK_NAMES: dict[JobKind, str] = {JobKind.train: "ddpm.train", JobKind.sample: "ddpm.sample",
                                  JobKind.finetune: "ddpm.finetune", JobKind.study: "ddpm.study"}


def choose_device(requested: str, config_gpu: Optional[int] = None) -> DeviceChoice:
    """The job's device: an explicit ``cpu`` / ``gpu`` request wins; under ``auto`` a train
    (or fine-tune) config's ``gpu: -1`` means the CPU, anything else leaves the choice to the free workers."""
    choice = DeviceChoice(requested)
    if choice is DeviceChoice.auto and config_gpu == -1:
        return DeviceChoice.cpu
    return choice


def queue_for(choice: DeviceChoice, live_queues: Iterable[str]) -> Queue:
    """``gpu`` waits for a GPU worker even when none is up yet; ``auto`` takes the GPU queue
    only while a live worker serves it (on a machine without a GPU, auto jobs run on the CPU)."""
    if choice is DeviceChoice.gpu or (choice is DeviceChoice.auto and Queue.gpu in set(live_queues)):
        return Queue.gpu
    return Queue.cpu


def runs_on_gpu(choice: DeviceChoice, worker_has_gpu: bool) -> bool:
    """A GPU worker runs a job on its GPU unless the job chose the CPU; a CPU worker (one that
    serves the gpu queue by WORKER_QUEUES) runs it on its CPU."""
    return worker_has_gpu and choice is not DeviceChoice.cpu
