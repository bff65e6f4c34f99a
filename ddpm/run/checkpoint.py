"""Checkpoint files: writing, discovery, pruning, loading, RNG state capture.

Layout inside ``<run>/checkpoints/``:
  step-00001000.pt         a periodic (or stop) checkpoint after optimizer step 1000
  step-00010000-final.pt   the checkpoint written when the run reached ``iterations``
Every file is written atomically (``atomic.py``): a crash at any point leaves either the old set
of checkpoints or the new one, never a partial ``step-*.pt``; temporaries do not match the name
pattern and are removed on the next start.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from .atomic import atomic_write_bytes
from .errors import RunError

FORMAT = "ddpm-studio-checkpoint"
VERSION = 1
_NAME = re.compile(r"^step-(\d{8,})(-final)?\.pt$")


@dataclass(frozen=True, order=True)
class CheckpointFile:
    step: int
    final: bool
    path: Path


def checkpoint_name(step: int, final: bool = False) -> str:
    return f"step-{step:08d}{'-final' if final else ''}.pt"


def list_checkpoints(ckpt_dir: Path) -> list[CheckpointFile]:
    """Checkpoints in ``ckpt_dir`` sorted by (step, final); temporaries are ignored."""
    found = []
    if ckpt_dir.is_dir():
        for p in ckpt_dir.iterdir():
            m = _NAME.match(p.name)
            if m and p.is_file():
                found.append(CheckpointFile(int(m.group(1)), bool(m.group(2)), p))
    return sorted(found)


def latest_checkpoint(ckpt_dir: Path) -> Optional[CheckpointFile]:
    found = list_checkpoints(ckpt_dir)
    return found[-1] if found else None


def resolve_checkpoint(run_dir: Union[str, Path], checkpoint: Optional[Union[str, Path]] = None) -> Path:
    """The given checkpoint, or the newest one of the run; RunError naming what is missing."""
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise RunError(f"--checkpoint {path}: no such file")
        return path
    run = Path(run_dir)
    if not run.is_dir():
        raise RunError(f"--run {run}: no such run folder")
    latest = latest_checkpoint(run / "checkpoints")
    if latest is None:
        raise RunError(f"--run {run}: the run has no checkpoints yet (looked in {run / 'checkpoints'})")
    return latest.path


def remove_stale_temporaries(ckpt_dir: Path) -> None:
    if ckpt_dir.is_dir():
        for p in ckpt_dir.glob(".*.tmp-*"):
            p.unlink(missing_ok=True)


def save_checkpoint(state: dict[str, Any], ckpt_dir: Path, step: int, final: bool = False) -> Path:
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = ckpt_dir / checkpoint_name(step, final)
    payload = {"format": FORMAT, "version": VERSION, "step": step, "final": final, **state}
    atomic_write_bytes(path, lambda fh: torch.save(payload, fh))
    return path


def load_checkpoint(path: Union[str, Path], map_location: Union[str, torch.device] = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by ``save_checkpoint``; a clear RunError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated, not a torch file, unpickling refused...
        # torch's own messages run to paragraphs; the first sentence says enough
        reason = str(exc).split(". ")[0].split("\n")[0][:160]
        raise RunError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {reason}); "
                       "it is not a complete checkpoint written by `ddpm train`") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RunError(f"{path} is not a DDPM Studio checkpoint")
    if state.get("version", 0) > VERSION:
        raise RunError(f"checkpoint {path} has format version {state['version']}; this ddpm reads up to {VERSION}")
    return state


def prune_checkpoints(ckpt_dir: Path, keep: int) -> list[Path]:
    """Keep the newest ``keep`` non-final checkpoints and the newest final one; delete the rest."""
    found = list_checkpoints(ckpt_dir)
    finals = [c for c in found if c.final]
    protected = {finals[-1].path} if finals else set()
    others = [c for c in found if c.path not in protected]
    removed = []
    for c in others[: max(0, len(others) - keep)]:
        c.path.unlink(missing_ok=True)
        removed.append(c.path)
    return removed


# ---- RNG states ------------------------------------------------------------------------------
def capture_rng() -> dict[str, Any]:
    """Every global RNG the training step touches, in a form torch.load(weights_only=True) reads."""
    np_state = np.random.get_state(legacy=False)
    py_version, py_state, py_gauss = random.getstate()
    rng: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                  "pos": int(np_state["state"]["pos"]),
                  "has_gauss": int(np_state["has_gauss"]), "gauss": float(np_state["gauss"])},
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def restore_rng(rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["torch"].cpu())
    n = rng["numpy"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": n["key"].cpu().numpy().astype(np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    p = rng["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in rng and torch.cuda.is_available():
        states = rng["cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in states])
