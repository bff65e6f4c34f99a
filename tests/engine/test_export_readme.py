"""The README's plain-PyTorch loading of a full export, run as written against a real tiny export:
it loads every weight, and the model it builds is the one ``ddpm finetune`` trains (the same
logits as ``ddpm.finetune.segmenter.Segmenter`` given the same head)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from train_helpers import tiny_cfg, write_volumes

from ddpm.config import load_finetune_config
from ddpm.export import export_run, read_exported
from ddpm.finetune.segmenter import HEAD_KEYS, build_segmenter
from ddpm.finetune.trainer import resolve
from ddpm.nn import UNet
from ddpm.train import run_training

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- export-plain-pytorch:start -->", "<!-- export-plain-pytorch:end -->"


def readme_block() -> str:
    text = README.read_text()
    assert START in text and END in text, f"README.md lost its {START} ... {END} block"
    section = text.split(START, 1)[1].split(END, 1)[0]
    match = re.fullmatch(r"\s*```python\n(.*?)```\s*", section, re.S)
    assert match, "the block between the markers is one ```python code block"
    return match.group(1)


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``model.safetensors`` of a 2-step 3D run with self-conditioning (the channel the block zeroes)."""
    tmp = tmp_path_factory.mktemp("export")
    cfg = tiny_cfg(write_volumes(tmp / "data"), tmp / "exp", is_3d=True,
                   model={"iterations": 2, "use_ema": True, "unet": {"self_condition": True}})
    run = tmp / "exp" / "pre"
    assert run_training(cfg, run).status == "completed"
    return export_run(run, tmp / "model.safetensors")


def test_the_readme_block_loads_the_export_as_the_segmenter_ddpm_finetune_trains(export, monkeypatch):
    monkeypatch.chdir(export.parent)  # the block reads "model.safetensors"
    ns: dict = {"__name__": "readme_block"}
    exec(compile(readme_block(), f"{README}:{START}", "exec"), ns)  # noqa: S102 (our own README)

    model, unet, x, logits, k = ns["model"], ns["unet"], ns["x"], ns["logits"], ns["num_classes"]
    assert isinstance(model, torch.nn.Module) and isinstance(unet, UNet) and unet.self_condition
    assert logits.shape == (x.shape[0], k, *x.shape[2:]) and torch.isfinite(logits).all()
    # every pretrained weight but the replaced last conv, exactly as exported
    tensors, meta = read_exported(export)
    assert meta["layout"] == "full"
    own = unet.state_dict()
    kept = [key for key in tensors if key not in HEAD_KEYS]
    assert kept and set(own) == set(tensors)
    assert all(torch.equal(own[key], tensors[key]) for key in kept)
    assert own["out_conv.weight"].shape[:2] == (k, unet.out_conv.in_channels)
    assert own["out_conv.weight"].shape[2:] == (1, 1, 1)  # 1x1(x1) head

    # the engine's segmenter over the same weights and head gives the same logits: the README
    # describes what `ddpm finetune` fine-tunes by default (its fixed t, self-conditioning zeros)
    ft = load_finetune_config({"pretrained": str(export), "task": {"num_classes": k}})
    engine, _ = build_segmenter(*resolve(ft))
    assert engine.timestep == model.timestep > 0
    engine.unet.load_state_dict(own, strict=True)
    model.eval()
    engine.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), engine(x), rtol=1e-5, atol=1e-6)
