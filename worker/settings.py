"""Worker settings from the environment: identity, device, queues and timing.

Everything here is read once at worker start. Shared settings (DATA_DIR, DATABASE_URL,
REDIS_URL, WORKER_HEARTBEAT_TIMEOUT_S) come from the backend's settings, never re-parsed here.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass

GPU_QUEUE = "gpu"
CPU_QUEUE = "cpu"


@dataclass(frozen=True)
class Device:
    """Where this worker runs jobs: ``cuda`` (its first visible GPU) or ``cpu``."""

    kind: str  # "cuda" | "cpu"
    label: str  # for humans and GET /api/workers, e.g. "cuda:0 (GPU 3)" or "cpu"

    @property
    def gpu_index(self) -> int:
        """Value for the engine's ``gpu`` key: 0 = first visible GPU, -1 = CPU."""
        return 0 if self.kind == "cuda" else -1


@dataclass(frozen=True)
class WorkerSettings:
    name: str
    device: Device
    queues: tuple[str, ...]
    heartbeat_interval_s: float = 5.0
    heartbeat_timeout_s: float = 60.0
    cancel_grace_s: float = 30.0
    poll_interval_s: float = 0.5
    progress_interval_s: float = 0.5


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise SystemExit(f"{name}={raw!r} must be positive")
    return value


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


def detect_device() -> Device:
    """One worker per GPU: the first GPU in CUDA_VISIBLE_DEVICES; CPU when none is visible.

    WORKER_DEVICE=cpu forces CPU; so does CUDA_VISIBLE_DEVICES set to "" or "-1".
    """
    forced = os.environ.get("WORKER_DEVICE", "").strip().lower()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if forced == "cpu":
        return Device("cpu", "cpu")
    if visible is not None and visible.strip() in ("", "-1", "none", "NoDevFiles"):
        return Device("cpu", "cpu")
    if _count_cuda_devices() > 0:
        first = visible.split(",")[0].strip() if visible else "0"
        return Device("cuda", f"cuda:0 (GPU {first})")
    if forced == "cuda":
        raise SystemExit("WORKER_DEVICE=cuda but torch sees no CUDA device")
    return Device("cpu", "cpu")


def default_queues(device: Device) -> tuple[str, ...]:
    """Which queues a worker serves unless WORKER_QUEUES says otherwise.

    The backend routes a job by its device: ``gpu`` / ``cpu`` as asked, ``auto`` to ``gpu`` only
    while a live worker serves that queue (so on a machine without a GPU, auto jobs go to cpu).
    A GPU worker serves ``gpu`` and ``cpu`` (idle, it may as well run CPU jobs, on its CPU as
    asked); a CPU worker serves ``cpu`` only, so it never takes a job that waits for a GPU.
    """
    return (GPU_QUEUE, CPU_QUEUE) if device.kind == "cuda" else (CPU_QUEUE,)


def load_settings() -> WorkerSettings:
    device = detect_device()
    raw_queues = os.environ.get("WORKER_QUEUES", "").strip()
    queues = tuple(q.strip() for q in raw_queues.split(",") if q.strip()) or default_queues(device)
    unknown = [q for q in queues if q not in (GPU_QUEUE, CPU_QUEUE)]
    if unknown:
        raise SystemExit(f"WORKER_QUEUES: unknown queue(s) {unknown}; use gpu and/or cpu")
    name = os.environ.get("WORKER_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    from backend.settings import get_settings

    # One value for API (live workers) and workers (re-queue): the backend's setting.
    timeout = float(get_settings().worker_heartbeat_timeout_s)
    interval = _float_env("WORKER_HEARTBEAT_INTERVAL_S", min(5.0, timeout / 4))
    if interval * 2 > timeout:
        raise SystemExit(f"WORKER_HEARTBEAT_INTERVAL_S={interval} must be at most half of "
                         f"WORKER_HEARTBEAT_TIMEOUT_S={timeout}, or live workers look dead")
    return WorkerSettings(
        name=name,
        device=device,
        queues=queues,
        heartbeat_interval_s=interval,
        heartbeat_timeout_s=timeout,
        cancel_grace_s=_float_env("WORKER_CANCEL_GRACE_S", 30.0),
        poll_interval_s=_float_env("WORKER_POLL_INTERVAL_S", 0.5),
    )
