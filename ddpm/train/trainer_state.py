"""What a training checkpoint holds, and putting it back: the trainer's state <-> a dict.

Everything the next step depends on: weights, EMA, optimizer, LR schedule, grad scaler, the
global RNG states, the position in the data stream, and the loop's counters (the interval
sums, the skipped steps and the non-finite streak, read back from the device before saving).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ddpm.config import ConfigError, config_to_dict
from ddpm.run import checkpoint as ck
from ddpm.run.run_dir import now_iso

# keys a resumed run must share with its checkpoint: they change what the weights mean
MUST_MATCH = ("is_3d", "model.unet", "model.beta_schedule.train", "model.objective",
              "model.use_ema", "model.optimizer", "dataset.image_size", "dataset.image_channels")


def _get(d: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def checkpoint_state(tr: Any) -> dict[str, Any]:
    """The checkpoint of the trainer ``tr`` (a ``ddpm.train.Trainer``, its counters on the host)."""
    rng = ck.capture_rng()
    if tr.device.type == "cuda":
        rng["device"] = torch.cuda.get_rng_state(tr.device)
    return {
        "config": config_to_dict(tr.cfg), "model": tr.model.state_dict(),
        "ema": tr.ema.state_dict() if tr.ema is not None else None,
        "optimizer": tr.optimizer.state_dict(), "scheduler": tr.scheduler.state_dict(),
        "scaler": tr.scaler.state_dict() if tr.fp16 else None, "rng": rng,
        "data_order": tr.order.state(tr.consumed), "output_spacing": tr.output_spacing,
        "skipped_steps": tr.skipped, "nonfinite_streak": tr.streak, "interval": dict(tr.interval),
        "torch_version": str(torch.__version__), "saved_at": now_iso(),
    }


def restore(tr: Any, state: dict[str, Any], path: Path) -> dict[str, Any]:
    """Put ``state`` (loaded on the CPU) into the trainer ``tr``; returns its RNG states, which
    the trainer restores last. A checkpoint of another model is a ConfigError naming the keys."""
    old, new = state["config"], config_to_dict(tr.cfg)
    diffs = [k for k in MUST_MATCH if _get(old, k) != _get(new, k)]
    if diffs:
        raise ConfigError([(k, f"differs from the run's checkpoint {path.name} ({_get(old, k)!r}); "
                               "a run can only resume with the same model") for k in diffs])
    tr.model.load_state_dict(state["model"])
    if tr.ema is not None:
        tr.ema.load_state_dict(state["ema"])
    tr.optimizer.load_state_dict(state["optimizer"])
    tr.scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):
        tr.scaler.load_state_dict(state["scaler"])
    tr.step = int(state["step"])
    tr.consumed = int(state["data_order"]["consumed"])
    tr.skipped = int(state.get("skipped_steps", 0))
    tr.streak = int(state.get("nonfinite_streak", 0))  # absent before the counters moved to the device
    tr.interval = dict(state.get("interval", tr.interval))
    return state["rng"]
