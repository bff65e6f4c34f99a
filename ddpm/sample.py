"""Sampling a trained run to files.

3D samples: ``sample-0000.nii.gz`` (float32 in [0, 1], affine = diag(output spacing) with the
volume centred on the origin, RAS axes as the training data were reoriented) and
``sample-0000.png`` (axial | coronal | sagittal mid slices side by side). 2D samples:
``sample-0000.png`` and one ``grid.png`` of all samples. Every file is written atomically.
"""
from __future__ import annotations

import gzip
import io
import json
import math
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import nibabel as nib
import numpy as np
import torch
from PIL import Image

from ddpm.train.callbacks import SampleFile
from ddpm.train.checkpoint import atomic_write_bytes, latest_checkpoint, load_checkpoint
from ddpm.train.errors import RunError

SAMPLERS = ("ddpm", "ddim", "dpmpp2m")
_PREVIEW_MIN_SIDE = 128  # small volumes are upscaled (nearest) so previews are visible


def nifti_affine(spacing: Sequence[float], shape: Sequence[int]) -> np.ndarray:
    """RAS affine: voxel (i, j, k) -> mm, spacing on the diagonal, volume centre at the origin."""
    sp = np.asarray(spacing, dtype=np.float64)
    aff = np.diag(np.append(sp, 1.0))
    aff[:3, 3] = -(np.asarray(shape[:3], dtype=np.float64) - 1) / 2 * sp
    return aff


def _to_uint8(a: np.ndarray) -> np.ndarray:
    return (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _upscale(img: Image.Image, min_side: int) -> Image.Image:
    factor = max(1, math.ceil(min_side / max(1, min(img.size))))
    return img.resize((img.width * factor, img.height * factor), Image.NEAREST) if factor > 1 else img


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _image_2d(x: np.ndarray) -> Image.Image:
    """(C, H, W) in [0, 1] -> grey (C=1), RGB (C=3), otherwise the first channel."""
    if x.shape[0] == 3:
        return Image.fromarray(_to_uint8(np.moveaxis(x, 0, -1)), "RGB")
    return Image.fromarray(_to_uint8(x[0]), "L")


def mid_slices(vol: np.ndarray) -> np.ndarray:
    """(D, H, W) volume in RAS order -> axial | coronal | sagittal mid slices, superior /
    anterior up, side by side with a 2-pixel black gap (cube inputs give equal panels)."""
    x, y, z = (s // 2 for s in vol.shape)
    axial = vol[:, :, z].T[::-1]      # rows: anterior at the top
    coronal = vol[:, y, :].T[::-1]    # rows: superior at the top
    sagittal = vol[x, :, :].T[::-1]   # rows: superior at the top
    h = max(p.shape[0] for p in (axial, coronal, sagittal))
    panels = []
    for p in (axial, coronal, sagittal):
        pad = np.zeros((h, p.shape[1]), dtype=np.float32)
        pad[: p.shape[0]] = p
        panels += [pad, np.zeros((h, 2), dtype=np.float32)]
    return np.concatenate(panels[:-1], axis=1)


def save_samples(x01: torch.Tensor, out_dir: Union[str, Path], spacing: Optional[Sequence[float]] = None,
                 start_index: int = 0, grid: bool = True) -> list[SampleFile]:
    """Write a batch (N, C, *spatial) in [0, 1]; 3D if it has three spatial axes."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arr = x01.detach().float().clamp(0, 1).cpu().numpy()
    is_3d = arr.ndim == 5
    files = []
    for k, x in enumerate(arr):
        idx = start_index + k
        stem = out / f"sample-{idx:04d}"
        if is_3d:
            data = x[0] if x.shape[0] == 1 else np.moveaxis(x, 0, -1)  # (D,H,W) or (D,H,W,C)
            sp = tuple(spacing) if spacing is not None else (1.0, 1.0, 1.0)
            img = nib.Nifti1Image(np.ascontiguousarray(data, dtype=np.float32), nifti_affine(sp, data.shape))
            img.set_qform(img.affine, code=1)
            img.set_sform(img.affine, code=1)
            img.header.set_xyzt_units("mm")
            vol_path = stem.with_suffix(".nii.gz")
            raw = gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)
            atomic_write_bytes(vol_path, lambda fh, raw=raw: fh.write(raw))
            preview = _upscale(Image.fromarray(_to_uint8(mid_slices(x[0])), "L"), _PREVIEW_MIN_SIDE)
            png = stem.with_suffix(".png")
            atomic_write_bytes(png, lambda fh, b=_png_bytes(preview): fh.write(b))
            files.append(SampleFile(idx, vol_path, png, tuple(x.shape)))
        else:
            png = stem.with_suffix(".png")
            atomic_write_bytes(png, lambda fh, b=_png_bytes(_image_2d(x)): fh.write(b))
            files.append(SampleFile(idx, None, png, tuple(x.shape)))
    if grid and not is_3d and len(arr):
        write_grid([_image_2d(x) for x in arr], out / "grid.png")
    return files


def write_grid(images: list[Image.Image], path: Path, gap: int = 2) -> Path:
    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    w, h = images[0].size
    sheet = Image.new(images[0].mode, (cols * (w + gap) - gap, rows * (h + gap) - gap))
    for i, im in enumerate(images):
        sheet.paste(im, ((i % cols) * (w + gap), (i // cols) * (h + gap)))
    sheet = _upscale(sheet, _PREVIEW_MIN_SIDE)
    atomic_write_bytes(path, lambda fh: fh.write(_png_bytes(sheet)))
    return path


# ---- loading a run ---------------------------------------------------------------------------
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


def load_model_from_checkpoint(state: dict[str, Any], use_ema: bool = True,
                               device: Optional[Union[str, torch.device]] = None) -> Any:
    """Build the DDPM of a checkpoint's config and load its EMA (or raw) weights."""
    from ddpm.config import load_config
    from ddpm.diffusion import DDPM

    cfg = load_config(state["config"])
    model = DDPM.from_config(cfg, device=device)
    weights = state["ema"]["model"] if use_ema and state.get("ema") else state["model"]
    model.load_state_dict(weights)
    return model.eval()


def sample_run(run_dir: Union[str, Path], num: int, sampler: str = "dpmpp2m", steps: Optional[int] = None,
               seed: int = 0, out_dir: Optional[Union[str, Path]] = None, batch_size: Optional[int] = None,
               progress: Optional[Callable[[int, int], None]] = None, checkpoint: Optional[Union[str, Path]] = None,
               use_ema: bool = True, device: Optional[Union[str, torch.device]] = None) -> list[SampleFile]:
    """Draw ``num`` samples from a run's newest (or the given) checkpoint into ``out_dir``.

    ``progress(done, total)`` counts network evaluations over all batches. The same seed,
    batch size and device give the same samples.
    """
    if num < 1:
        raise RunError(f"--num {num}: must be at least 1")
    if sampler not in SAMPLERS:
        raise RunError(f"--sampler {sampler!r} is not allowed; allowed values: {', '.join(SAMPLERS)}")
    if steps is not None and steps < 1:
        raise RunError(f"--steps {steps}: must be at least 1")
    path = resolve_checkpoint(run_dir, checkpoint)
    state = load_checkpoint(path)
    if use_ema and not state.get("ema"):
        raise RunError(f"{path} holds no EMA weights (use_ema was off); pass --no-ema")
    model = load_model_from_checkpoint(state, use_ema=use_ema, device=device)
    if steps is not None and sampler == "ddpm" and steps > model.num_timesteps:
        raise RunError(f"--steps {steps}: the ddpm sampler allows at most {model.num_timesteps}")
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "generated"
    bs = batch_size or state["config"]["dataset"]["batch_size"]
    gen = torch.Generator(device=model.device).manual_seed(seed)
    batches = [min(bs, num - i) for i in range(0, num, bs)]
    files: list[SampleFile] = []
    done = [0]
    per_batch: list[int] = []

    def _progress(i: int, total: int) -> None:
        if progress is not None:
            if not per_batch:
                per_batch.append(total)
            progress(done[0] + i, per_batch[0] * len(batches))

    for n in batches:
        x = model.sample(n, sampler=sampler, steps=steps, generator=gen, progress=_progress)
        files += save_samples((x + 1) / 2, out, state.get("output_spacing"), start_index=len(files), grid=False)
        done[0] += per_batch[0] if per_batch else 0
    if model.dims == 2:
        write_grid([Image.open(f.preview_path) for f in files], out / "grid.png")
    manifest = {"checkpoint": str(path), "step": state["step"], "sampler": sampler, "steps": steps,
                "seed": seed, "ema": use_ema, "samples": [f.to_dict() for f in files]}
    atomic_write_bytes(out / "samples.json", lambda fh: fh.write(json.dumps(manifest, indent=1).encode()))
    return files
