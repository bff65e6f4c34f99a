"""Sampling a trained run to files (``ddpm sample``); the file formats are ``ddpm.run.sample_files``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch
from PIL import Image

from ddpm.config import DEFAULT_SAMPLER, ConfigError, Sampler, load_config
from ddpm.diffusion import DDPM
from ddpm.precision import autocast_dtype, resolve_precision
from ddpm.run.atomic import atomic_write_bytes
from ddpm.run.checkpoint import load_checkpoint, resolve_checkpoint
from ddpm.run.errors import RunError
from ddpm.run.sample_files import SampleFile, save_samples, write_grid
from ddpm.train import distributed as dd


def load_model_from_checkpoint(state: dict[str, Any], use_ema: bool = True,
                               device: Optional[Union[str, torch.device]] = None) -> Any:
    """Build the DDPM of a checkpoint's config and load its EMA (or raw) weights."""
    cfg = load_config(state["config"])
    model = DDPM.from_config(cfg, device=device)
    weights = state["ema"]["model"] if use_ema and state.get("ema") else state["model"]
    model.load_state_dict(weights)
    return model.eval()


def sample_run(run_dir: Union[str, Path], num: int, sampler: str = DEFAULT_SAMPLER, steps: Optional[int] = None,
               seed: int = 0, out_dir: Optional[Union[str, Path]] = None, batch_size: Optional[int] = None,
               progress: Optional[Callable[[int, int], None]] = None, checkpoint: Optional[Union[str, Path]] = None,
               use_ema: bool = True, device: Optional[Union[str, torch.device]] = None,
               precision: str = "auto") -> list[SampleFile]:
    """Draw ``num`` samples from a run's newest (or the given) checkpoint into ``out_dir``.

    ``progress(done, total)`` counts network evaluations over all batches. The same seed,
    batch size and device give the same samples: batch k draws from its own generator (batch 0
    from ``seed`` itself), so under torchrun / ``ddpm sample --nproc`` the batches are shared out
    among the processes (batch k to rank k mod N) and give the same files as one process; rank 0
    reports progress and writes the grid and samples.json. ``precision`` (auto, fp32, bf16, fp16) is
    resolved on the sampling device by ``ddpm.precision``, not taken from the training config:
    the machine that samples need not be the one that trained. samples.json records it and why.
    """
    if num < 1:
        raise RunError(f"--num {num}: must be at least 1")
    if sampler not in set(Sampler):
        raise RunError(f"--sampler {sampler!r} is not allowed; allowed values: {', '.join(Sampler)}")
    sampler = Sampler(sampler)
    if steps is not None and steps < 1:
        raise RunError(f"--steps {steps}: must be at least 1")
    path = resolve_checkpoint(run_dir, checkpoint)
    state = load_checkpoint(path)
    if use_ema and not state.get("ema"):
        raise RunError(f"{path} holds no EMA weights (use_ema was off); pass --no-ema")
    dist, dev = dd.start(device if device is not None else load_config(state["config"]).gpu)
    try:
        return _sample(state, path, dist, dev, num, sampler, steps, seed, run_dir, out_dir, batch_size,
                       progress, use_ema, precision)
    finally:
        dd.finish(dist)


def _sample(state: dict[str, Any], path: Path, dist: dd.Dist, device: torch.device, num: int, sampler: Sampler,
            steps: Optional[int], seed: int, run_dir: Union[str, Path], out_dir: Optional[Union[str, Path]],
            batch_size: Optional[int], progress: Optional[Callable[[int, int], None]], use_ema: bool,
            precision: str) -> list[SampleFile]:
    model = load_model_from_checkpoint(state, use_ema=use_ema, device=device)
    try:
        choice = resolve_precision(precision, model.device, key="precision")
    except ConfigError as exc:
        raise RunError(f"--precision {precision}: {exc.errors[0][1]}") from None
    if steps is not None and sampler == Sampler.ddpm and steps > model.num_timesteps:
        raise RunError(f"--steps {steps}: the ddpm sampler allows at most {model.num_timesteps}")
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "generated"
    bs = batch_size or state["config"]["dataset"]["batch_size"]
    batches = [min(bs, num - i) for i in range(0, num, bs)]
    mine = [k for k in range(len(batches)) if k % dist.world_size == dist.rank]
    files: list[SampleFile] = []
    done = [0]
    per_batch: list[int] = []

    def _progress(i: int, total: int) -> None:
        if progress is not None and dist.is_main:
            if not per_batch:
                per_batch.append(total)
            progress(done[0] + i, per_batch[0] * len(mine))

    for k in mine:
        # 0x9E37...: the golden-ratio constant spreads the batch seeds apart; batch 0 keeps ``seed``
        gen = torch.Generator(device=model.device).manual_seed((seed + k * 0x9E3779B97F4A7C15) % 2**63)
        x = model.sample(batches[k], sampler=sampler, steps=steps, generator=gen, progress=_progress,
                         autocast_dtype=autocast_dtype(choice))
        files += save_samples((x + 1) / 2, out, state.get("output_spacing"), start_index=sum(batches[:k]),
                              grid=False)
        done[0] += per_batch[0] if per_batch else 0
    files = sorted(dd.gather(files, dist), key=lambda f: f.index)
    if not dist.is_main:
        return files
    if model.dims == 2:
        write_grid([Image.open(f.preview_path) for f in files], out / "grid.png")
    manifest = {"checkpoint": str(path), "step": state["step"], "sampler": sampler.value, "steps": steps,
                "seed": seed, "ema": use_ema, "precision": choice.precision, "precision_reason": choice.reason,
                "samples": [f.to_dict() for f in files]}
    atomic_write_bytes(out / "samples.json", lambda fh: fh.write(json.dumps(manifest, indent=1).encode()))
    return files
