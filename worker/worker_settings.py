"""Worker settings from the environment (pydantic-settings): identity, device, queues, timing.

Read once at worker start by ``load_settings``. Shared settings (DATA_DIR, DATABASE_URL,
REDIS_URL, WORKER_HEARTBEAT_TIMEOUT_S) come from ``backend.settings``, never parsed twice.

  WORKER_NAME                 unique name (default <hostname>-<pid>)
  CUDA_VISIBLE_DEVICES        the GPUs the worker owns: a one-process job runs on the first, a job of
                              gpus N on the first N (one process each); ""/-1 = CPU-only worker
  WORKER_NPROC                the most processes one job may run here (declared in the heartbeat;
                              the API refuses a job no live worker can hold). Default: the visible
                              GPU count on a GPU worker (at most that), 1 on a CPU worker (set it,
                              e.g. to the core count, to run multi-process CPU jobs: gloo)
  WORKER_DEVICE               cpu to force the CPU (cuda: fail at start when no GPU is seen)
  WORKER_QUEUES               comma list of gpu,cpu (default: see ``default_queues``)
  WORKER_HEARTBEAT_INTERVAL_S heartbeat period (default min(5, timeout/4))
  WORKER_CANCEL_GRACE_S       seconds a cancelled/stopping job gets before it is killed (30)
  WORKER_POLL_INTERVAL_S      how often a running job's cancel flag is read (0.5)
  WORKER_STALL_TIMEOUT_S      a job's child silent this long (no progress, phase or log output)
                              is killed and the job failed naming the phase (600)
  WORKER_STALL_PHASE_TIMEOUTS_S  JSON {phase: seconds} for phases that are slow by nature; merged
                              over the defaults in ``STALL_PHASE_DEFAULTS_S``
  WORKER_WARM_CHILD           keep an engine child started ahead for the next job (true)
  WORKER_LOGLEVEL             Celery log level (INFO)
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Annotated, Literal, Optional

from pydantic import Field, PrivateAttr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from backend.dispatch import Queue


@dataclass(frozen=True)
class Device:
    """Where this worker runs jobs: ``cuda`` (its first visible GPU) or ``cpu``."""

    kind: str  # "cuda" | "cpu"
    label: str  # for humans and GET /api/workers, e.g. "cuda:0 (GPU 3)" or "cpu"
    gpus: int = 0  # visible CUDA devices

    @property
    def has_gpu(self) -> bool:
        return self.kind == "cuda"


CPU = Device("cpu", "cpu")

# Phases that may be silent longer than WORKER_STALL_TIMEOUT_S: a first kernel build (it has its
# own deadline in ddpm.nn.kernels), preview sampling at a metric step of a large 3D model on a CPU.
STALL_PHASE_DEFAULTS_S: dict[str, float] = {"starting": 1800.0, "loading kernels": 1800.0,
                                            "evaluating": 3600.0}


def _default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerSettings(BaseSettings):
    """The environment as read; ``load_settings`` adds the detected device and the defaults that
    depend on it (queues) or on the backend's settings (heartbeat timing)."""

    model_config = SettingsConfigDict(env_prefix="WORKER_", case_sensitive=False, extra="ignore", frozen=True)

    name: str = Field(default_factory=_default_name, min_length=1)
    device_request: Literal["", "cpu", "cuda"] = Field("", validation_alias="WORKER_DEVICE")
    cuda_visible_devices: Optional[str] = Field(None, validation_alias="CUDA_VISIBLE_DEVICES")
    queues: Annotated[tuple[Queue, ...], NoDecode] = ()
    nproc_request: Optional[int] = Field(None, ge=1, le=1024, validation_alias="WORKER_NPROC")
    heartbeat_interval_s: Optional[float] = Field(None, gt=0)
    cancel_grace_s: float = Field(30.0, gt=0)
    poll_interval_s: float = Field(0.5, gt=0)
    progress_interval_s: float = Field(0.5, gt=0)
    stall_timeout_s: float = Field(600.0, gt=0)
    stall_phase_timeouts_s: dict[str, float] = Field(default_factory=dict)
    warm_child: bool = True
    loglevel: str = "INFO"
    # not from WORKER_* variables: filled by load_settings
    _device: Device = PrivateAttr(CPU)
    _heartbeat_timeout_s: float = PrivateAttr(60.0)

    @property
    def device(self) -> Device:
        return self._device

    @property
    def nproc(self) -> int:
        """The most processes one job may run on this worker (its declared ``gpus``)."""
        return self.nproc_request or (self._device.gpus if self._device.has_gpu else 1)

    @property
    def heartbeat_timeout_s(self) -> float:
        """WORKER_HEARTBEAT_TIMEOUT_S as the backend reads it (one value for API and workers)."""
        return self._heartbeat_timeout_s

    def stall_budget_s(self, phase: str) -> float:
        """Seconds of silence allowed in ``phase`` before its child counts as stalled."""
        budgets = {**STALL_PHASE_DEFAULTS_S, **self.stall_phase_timeouts_s}
        return budgets.get(phase, self.stall_timeout_s)

    @field_validator("name", mode="before")
    @classmethod
    def _empty_name_is_default(cls, v: object) -> object:
        return v or _default_name()

    @field_validator("device_request", mode="before")
    @classmethod
    def _lower(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("queues", mode="before")
    @classmethod
    def _comma_list(cls, v: object) -> object:
        if isinstance(v, str):
            return tuple(q.strip() for q in v.split(",") if q.strip())
        return v


def _nvidia_driver_present() -> bool:
    return os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidiactl")


def _count_cuda_devices() -> int:
    """Visible CUDA devices, asked in a throwaway process so the worker never initialises CUDA
    itself (training children are spawned; a CUDA context in the parent would only cost memory).
    Without an NVIDIA driver the answer is 0 at once (no torch import: faster start)."""
    if not _nvidia_driver_present():
        return 0
    code = "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)"
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=120, check=True)
        return int(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError, OSError):
        return 0


def detect_device(request: str = "", visible: Optional[str] = None) -> Device:
    """One worker per GPU: the first GPU in CUDA_VISIBLE_DEVICES; CPU when none is visible.

    ``request`` (WORKER_DEVICE) ``cpu`` forces the CPU; so does CUDA_VISIBLE_DEVICES set to ""
    or "-1".
    """
    if request == "cpu":
        return CPU
    if visible is not None and visible.strip() in ("", "-1", "none", "NoDevFiles"):
        return CPU
    count = _count_cuda_devices()
    if count > 0:
        first = visible.split(",")[0].strip() if visible else "0"
        label = f"cuda:0 (GPU {first})" if count == 1 else f"cuda:0-{count - 1} (GPUs {visible or 'all'})"
        return Device("cuda", label, gpus=count)
    if request == "cuda":
        raise SystemExit("WORKER_DEVICE=cuda but torch sees no CUDA device")
    return CPU


def default_queues(device: Device) -> tuple[Queue, ...]:
    """Which queues a worker serves unless WORKER_QUEUES says otherwise.

    The API routes a job by its device (``backend.dispatch.queue_for``): ``gpu`` / ``cpu`` as
    asked, ``auto`` to ``gpu`` only while a live worker serves that queue (so on a machine without
    a GPU, auto jobs go to cpu). A GPU worker serves ``gpu`` and ``cpu`` (idle, it may as well run
    CPU jobs, on its CPU as asked); a CPU worker serves ``cpu`` only, so it never takes a job that
    waits for a GPU.
    """
    return (Queue.gpu, Queue.cpu) if device.has_gpu else (Queue.cpu,)


def _one_line(exc: ValidationError) -> str:
    """``WORKER_QUEUES: Input should be 'gpu' or 'cpu' (got 'fast')``: the variable and why."""
    parts = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        info = WorkerSettings.model_fields.get(field)
        alias = info.validation_alias if info is not None and isinstance(info.validation_alias, str) else None
        var = alias or f"WORKER_{field.upper()}"
        parts.append(f"{var}: {err['msg']} (got {err.get('input')!r})")
    return "; ".join(parts)


def load_settings() -> WorkerSettings:
    """The worker's settings; a bad variable stops the start with one line naming it."""
    try:
        env = WorkerSettings()
    except ValidationError as exc:
        raise SystemExit(_one_line(exc)) from None
    device = detect_device(env.device_request, env.cuda_visible_devices)
    if device.has_gpu and env.nproc_request and env.nproc_request > device.gpus:
        raise SystemExit(f"WORKER_NPROC={env.nproc_request} but this worker sees {device.gpus} GPU(s) "
                         "(CUDA_VISIBLE_DEVICES): one process per GPU")
    from backend.settings import get_settings

    # One value for API (live workers) and workers (re-queue): the backend's setting.
    timeout = float(get_settings().worker_heartbeat_timeout_s)
    interval = env.heartbeat_interval_s or min(5.0, timeout / 4)
    if interval * 2 > timeout:
        raise SystemExit(f"WORKER_HEARTBEAT_INTERVAL_S={interval} must be at most half of "
                         f"WORKER_HEARTBEAT_TIMEOUT_S={timeout}, or live workers look dead")
    settings = env.model_copy(update={"queues": env.queues or default_queues(device),
                                      "heartbeat_interval_s": interval})
    settings._device, settings._heartbeat_timeout_s = device, timeout
    return settings
