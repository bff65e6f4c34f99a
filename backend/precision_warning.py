"""A non-blocking warning at submit: bf16 asked where every live worker of the job's queue would
only emulate it (a training step then takes many times as long as in fp32).

The workers report their facts in the heartbeat (``worker.heartbeat.local_precision_facts``);
the judgement is the engine's own rule (``ddpm.precision_rules.choose_precision``), so the
warning says what the job's log would say. No live worker, or one that reports no facts, means
no warning: the API cannot know where the job will run.
"""
from __future__ import annotations

from typing import Any, Optional

from sqlalchemy.orm import Session

from backend.dispatch import DeviceChoice, Queue, queue_for, choose_device
from backend.models import Worker
from backend.worker_registry import live_workers
from ddpm.config import ConfigError
from ddpm.precision_rules import DeviceFacts, choose_precision

PRECISION_KEY = "config.model.precision"


def _facts_for(worker: Worker, queue: Queue) -> Optional[DeviceFacts]:
    # a GPU worker runs gpu-queue jobs on its GPU; anything else runs on the worker's CPU
    kind = "cuda" if queue is Queue.gpu and worker.device != "cpu" else "cpu"
    facts = (worker.precision_facts or {}).get(kind)
    return DeviceFacts(**facts) if isinstance(facts, dict) else None


def emulated_bf16_warning(session: Session, timeout_s: float, config: Optional[dict[str, Any]],
                          device: DeviceChoice) -> Optional[str]:
    """The engine's warning text when ``config`` asks for bf16 and every live worker that could
    take the job emulates it; None otherwise."""
    if not config or (config.get("model") or {}).get("precision") != "bf16":
        return None
    workers = live_workers(session, timeout_s)
    queue = queue_for(choose_device(device, config.get("gpu")), {q for w in workers for q in (w.queues or [])})
    facts = [_facts_for(w, queue) for w in workers if queue in (w.queues or [])]
    if not facts or any(f is None for f in facts):
        return None
    warnings = []
    for f in facts:
        try:
            warnings.append(choose_precision("bf16", f).warning)
        except ConfigError:
            return None  # cannot run bf16 at all: the engine's error says so when the job starts
    return warnings[0] if all(warnings) else None
