"""A fine-tuned run put to use: predicting label maps on each file's own grid, writing them,
and scoring them against a labelled folder.

``ddpm predict`` writes one label map per image: ``<case>.nii.gz`` (uint8 classes, the image's
shape and affine) for volumes, ``<case>.png`` (8-bit, pixel = class) for 2D images. ``ddpm
evaluate`` writes ``{"mean_dice", "per_class", "cases": [{"file", "dice"}]}``.
"""
from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import nibabel as nib
import numpy as np
import torch

from ddpm.config import FinetuneConfig, load_finetune_config, saved_finetune_config
from ddpm.data.datasets import find_files
from ddpm.data.io import NIFTI_EXTS, DataError, Header, file_ext
from ddpm.data.preprocess import PreprocessSettings
from ddpm.run.atomic import atomic_write_bytes, atomic_write_text
from ddpm.run.checkpoint import load_checkpoint, resolve_checkpoint
from ddpm.run.errors import RunError

from .grid import image_on_model_grid, probabilities_to_file_grid, settings_for
from .labelled import LAYOUTS, labelled_pairs, layout_of, read_label
from .losses import dice_per_class, mean_over
from .segmenter import Segmenter


@dataclass
class FinetunedRun:
    cfg: FinetuneConfig
    model: Segmenter
    settings: PreprocessSettings
    checkpoint: Path
    device: torch.device


def load_finetuned(run_dir: Union[str, Path], checkpoint: Optional[Union[str, Path]] = None,
                   device: Union[str, torch.device] = "cpu") -> FinetunedRun:
    """The segmenter of a fine-tune run (its newest checkpoint; EMA weights when it kept them)."""
    path = resolve_checkpoint(run_dir, checkpoint)
    state = load_checkpoint(path)
    if "task" not in state["config"]:
        raise RunError(f"--run {run_dir} is a training run; evaluate and predict take a run of "
                       "`ddpm finetune`")
    cfg = load_finetune_config(saved_finetune_config(state["config"]))
    model = Segmenter.from_config(cfg)
    model.load_state_dict(state["ema"]["model"] if state.get("ema") else state["model"])
    device = torch.device(device)
    return FinetunedRun(cfg, model.to(device).eval(), settings_for(cfg), path, device)


@torch.no_grad()
def predict_file(run: FinetunedRun, path: Union[str, Path]) -> tuple[np.ndarray, Header]:
    """The label map (uint8) of one image on the image's own grid, and the image's header."""
    image, header = image_on_model_grid(path, run.settings)
    x = torch.from_numpy(image * 2.0 - 1.0)[None].to(run.device)
    probs = run.model(x).float().softmax(dim=1)[0].cpu().numpy()
    return probabilities_to_file_grid(probs, header, run.settings).astype(np.uint8), header


def images_of(data: Union[str, Path]) -> list[Path]:
    """The images to predict: a labelled folder's images, else every supported file under it."""
    root = Path(data)
    if root.is_dir() and any((root / images).is_dir() for images, _, _ in LAYOUTS):
        image_dir, _, _ = layout_of(root)
        return find_files(image_dir)
    files = find_files(root)
    if not files:
        raise DataError(f"--data {root}: no supported image files", root)
    return files


def case_name(path: Path) -> str:
    """An output's name: the image's without extension (and without nnU-Net's _0000 in an
    imagesTr/ or imagesTs/ folder), so it matches the label's name."""
    stem = path.name[: len(path.name) - len(file_ext(path))]
    suffix = LAYOUTS[1][2]
    nnunet = path.parent.name in ("imagesTr", "imagesTs")
    return stem[: -len(suffix)] if nnunet and stem.endswith(suffix) else stem


def write_label_map(labels: np.ndarray, header: Header, out_dir: Path) -> Path:
    """One label map beside its image's name; NIfTI with the image's affine, or a PNG for 2D."""
    name = case_name(header.path)
    if header.dims == 2 and file_ext(header.path) not in NIFTI_EXTS:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(labels.astype(np.uint8), "L").save(buf, format="PNG")
        path = out_dir / f"{name}.png"
        atomic_write_bytes(path, lambda fh: fh.write(buf.getvalue()))
        return path
    img = nib.Nifti1Image(labels.astype(np.uint8), header.affine)
    img.set_sform(header.affine, code=1)
    img.set_qform(header.affine, code=1)
    img.header.set_xyzt_units("mm")
    raw = gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)
    path = out_dir / f"{name}.nii.gz"
    atomic_write_bytes(path, lambda fh: fh.write(raw))
    return path


def predict_folder(run: FinetunedRun, data: Union[str, Path], out_dir: Union[str, Path]) -> list[Path]:
    """Write the label map of every image of ``data`` to ``out_dir``; returns the files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in images_of(data):
        labels, header = predict_file(run, path)
        written.append(write_label_map(labels, header, out))
    return written


def evaluate_folder(run: FinetunedRun, data: Union[str, Path]) -> dict[str, Any]:
    """Dice of the run's predictions against every label of a labelled folder, on the labels'
    own grids: per case and class, per class over cases, and the mean over both."""
    root = Path(data)
    k = run.cfg.task.num_classes
    cases = []
    for pair in labelled_pairs(root, k):
        pred, _ = predict_file(run, pair.image)
        cases.append({"file": pair.image.relative_to(root).as_posix(),
                      "dice": dice_per_class(pred, read_label(pair.label), k)})
    mean, per_class = mean_over([c["dice"] for c in cases], k)
    return {"mean_dice": mean, "per_class": per_class, "cases": cases}


def write_evaluation(result: dict[str, Any], out: Union[str, Path]) -> Path:
    out = Path(out)
    if not out.parent.is_dir():
        raise RunError(f"--out {out}: folder {out.parent} does not exist")
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    return out


def format_evaluation(result: dict[str, Any]) -> str:
    """A short table: one row per case, then the per-class means and the overall mean."""
    classes = list(result["per_class"])
    width = max([len("mean")] + [len(c["file"]) for c in result["cases"]])
    head = f"{'case':<{width}}  " + "  ".join(f"{'class ' + c:>8}" for c in classes)
    rows = [f"{c['file']:<{width}}  " + "  ".join(f"{c['dice'][k]:>8.4f}" for k in classes)
            for c in result["cases"]]
    mean = f"{'mean':<{width}}  " + "  ".join(f"{result['per_class'][k]:>8.4f}" for k in classes)
    return "\n".join([head, *rows, mean, f"mean Dice {result['mean_dice']:.4f} "
                                         f"({len(result['cases'])} cases)"])
