"""Print the config reference (every key, its default and meaning) as a Markdown table, from the
schema itself, so the README cannot drift from ddpm/config.py (tests/test_readme.py checks it).

    python scripts/config_reference.py                  # print it
    python scripts/config_reference.py --update-readme  # rewrite the README's table
"""
from __future__ import annotations

import json
import sys
import typing
from pathlib import Path

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ddpm.config import TrainConfig  # noqa: E402

# Meanings that the schema's field descriptions leave out (the seed's own keys).
MEANINGS = {
    "gpu": "CUDA device index; -1 or a machine without CUDA = CPU (with a warning when a GPU was asked for)",
    "experiment_path": "runs go to `<experiment_path>/<run name>/` (the app sets it to `DATA_DIR/runs`)",
    "is_3d": "3D volumes (B,C,D,H,W) instead of 2D images (B,C,H,W)",
    "seed": "seed of weights, data order, noise and the held-out split",
    "model.unet.self_condition": "feed the model its own x0 estimate (half the training steps; every sampling step)",
    "model.unet.dropout": "dropout inside the residual blocks",
    "model.beta_schedule.train.schedule": "noise schedule: linear, cosine, sigmoid or quadratic",
    "model.beta_schedule.train.n_timestep": "diffusion steps T",
    "model.beta_schedule.train.linear_start": "first beta (linear, sigmoid, quadratic)",
    "model.beta_schedule.train.linear_end": "last beta (linear, sigmoid, quadratic)",
    "model.beta_schedule.test": "optional sampling block (the seed's): only its n_timestep is used",
    "model.beta_schedule.test.schedule": "must equal train's: a model samples on the noise levels it learned",
    "model.beta_schedule.test.n_timestep": "default steps of the ancestral (ddpm) sampler, respaced on train's schedule",
    "model.beta_schedule.test.linear_start": "must equal train's",
    "model.beta_schedule.test.linear_end": "must equal train's",
    "model.lr": "peak learning rate",
    "model.optimizer": "adam or adamw",
    "model.weight_decay": "weight decay (decoupled for adamw)",
    "model.loss_type": "l1, l2 or huber",
    "model.objective": "what the U-Net predicts: pred_noise, pred_x0 or pred_v",
    "model.use_ema": "keep an exponential moving average of the weights (used for samples and export)",
    "model.ema_decay": "EMA decay, reached after a warm-up (min(decay, (1+n)/(10+n)))",
    "model.lr_schedule": "after warm-up: constant, or cosine decay to 0 at `iterations`",
    "model.precision": "fp32, bf16 autocast (CPU or CUDA), fp16 autocast + gradient scaler (CUDA only)",
    "model.metric_sampler": "sampler for the metric-step samples",
    "model.metric_steps": "sampling steps for the metric-step samples",
    "dataset.name": "volume3d (NIfTI/.npy volumes) or image2d (PNG/JPEG/TIFF/2D .npy); default follows is_3d",
    "dataset.path": "folder searched recursively for supported files (the seed's `<path>/<name>/volumes/` works)",
    "dataset.image_size": "side of the cube/square the data is resized to (e.g. 64 = 64x64x64)",
    "dataset.image_channels": "channels (4D NIfTI last axis, or RGB)",
    "dataset.batch_size": "samples per micro-batch",
    "dataset.num_workers": "DataLoader worker processes",
    "dataset.pin_memory": "pinned host memory for faster copies to the GPU",
    "dataset.intensity": "`{\"window\": [low, high]}` instead of percentiles, e.g. CT [-1000, 400]",
    "dataset.intensity.window": "[low, high] intensity window",
}


def _models_in(annotation) -> list[type[BaseModel]]:
    args = typing.get_args(annotation) or (annotation,)
    return [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]


def rows(model: type[BaseModel] = TrainConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    out = []
    instance = model.model_construct()
    for name, field in model.model_fields.items():
        key = prefix + name
        nested = _models_in(field.annotation)
        if nested and field.default is None:
            default = "null"
        elif nested:
            out.extend(rows(nested[0], key + "."))
            continue
        else:
            value = field.get_default(call_default_factory=True) if not field.is_required() else None
            default = "required" if field.is_required() else json.dumps(value)
        meaning = MEANINGS.get(key) or field.description or ""
        out.append((key, default, meaning))
        for sub in nested:
            out.extend(rows(sub, key + "."))
    del instance
    return out


def markdown() -> str:
    lines = ["| key | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{k}` | `{d}` | {m} |" for k, d, m in rows()]
    return "\n".join(lines)


START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def with_reference(readme: str) -> str:
    """The README text with the table between the markers replaced by the current one."""
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{markdown()}\n{END}{tail}"


if __name__ == "__main__":
    if sys.argv[1:] == ["--update-readme"]:
        path = Path(__file__).resolve().parents[1] / "README.md"
        path.write_text(with_reference(path.read_text()))
    else:
        print(markdown())
