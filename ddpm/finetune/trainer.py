"""The fine-tune loop: ``run_finetune(cfg, run_dir, callbacks, resume) -> TrainResult``.

It is the training loop (``ddpm.train.Trainer``) with three seams replaced: the datasets (the
labelled cases), the model (the segmenter, whose loss on a batch is Dice + cross-entropy) and
the metric step (validation loss and Dice per class). Everything else is the trainer's own:
the run folder, checkpoints, exact resume, Ctrl-C, precision, LR schedule, EMA, gradient
clipping and the skipping of non-finite steps.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from ddpm.config import ConfigError, FinetuneConfig
from ddpm.run.checkpoint import latest_checkpoint
from ddpm.train.callbacks import TrainCallbacks
from ddpm.train.metrics import format_metrics_line, json_safe
from ddpm.train.trainer import Trainer, TrainResult

from .dataset import LabelledDataset, build_labelled_datasets, split_item
from .losses import dice_ce_loss, dice_per_class, mean_over
from .segmenter import PretrainedSource, Segmenter, build_segmenter, read_pretrained

log = logging.getLogger("ddpm.train")  # the trainer's logger: one train.log, one console handler


class TrainableSegmenter(Segmenter):
    """The segmenter as the training loop drives a model: a batch's loss from
    ``p_losses(batch, t)``, with no timesteps to draw (the segmenter's time input is fixed)."""

    def sample_timesteps(self, n: int) -> None:
        return None

    def p_losses(self, batch: torch.Tensor, _t: Any = None) -> torch.Tensor:
        images, labels = split_item(batch, self.unet.in_channels)
        return dice_ce_loss(self(images), labels)


@torch.no_grad()
def validate(model: Segmenter, data: LabelledDataset, batch_size: int, device: torch.device,
             autocast: Any) -> dict[str, Any]:
    """Loss and Dice (per foreground class, and their mean) of ``model`` on every case of ``data``."""
    was = model.training
    model.eval()
    losses, scores = [], []
    try:
        for start in range(0, len(data), batch_size):
            cases = [data.case(i) for i in range(start, min(len(data), start + batch_size))]
            images = torch.from_numpy(np.stack([c[0] for c in cases])).to(device)
            labels = torch.from_numpy(np.stack([c[1] for c in cases])).long().to(device)
            with autocast():
                logits = model(images)
            losses.append(float(dice_ce_loss(logits, labels)) * len(cases))
            pred = logits.argmax(dim=1)
            scores += [dice_per_class(p, t, model.num_classes) for p, t in zip(pred, labels)]
    finally:
        model.train(was)
    mean, per_class = mean_over(scores, model.num_classes)
    return {"val_loss": sum(losses) / max(1, len(data)), "val_dice": mean, "val_dice_per_class": per_class}


class FinetuneTrainer(Trainer):
    def __init__(self, cfg: FinetuneConfig, run_dir: Union[str, Path], callbacks: Optional[TrainCallbacks],
                 source: Optional[PretrainedSource]) -> None:
        super().__init__(cfg, run_dir, callbacks)  # type: ignore[arg-type]
        self.source = source

    def _setup(self, resume: bool) -> Optional[Path]:
        # the trainer checks the keys that shape the U-Net; these shape the head and what trains
        if latest_checkpoint(self.paths.checkpoints) is not None and self.paths.config.is_file():
            old, new = json.loads(self.paths.config.read_text()), self.cfg.model_dump(mode="json")
            diffs = [(key, old.get(key[0], {}).get(key[1]), new[key[0]][key[1]])
                     for key in (("task", "num_classes"), ("model", "freeze"))
                     if old.get(key[0], {}).get(key[1]) != new[key[0]][key[1]]]
            if diffs:
                raise ConfigError([(".".join(k), f"{v!r} differs from the run's ({o!r}); a run can only "
                                                 "resume with the same model") for k, o, v in diffs])
        return super()._setup(resume)

    def build_datasets(self) -> tuple[Any, Any]:
        return build_labelled_datasets(self.cfg)

    def build_model(self, device: torch.device) -> torch.nn.Module:
        seg, report = build_segmenter(self.cfg, self.source, TrainableSegmenter)
        if report is not None:
            log.info("pretrained weights from %s: %d tensors loaded, new head %s", self.source.origin,
                     report.loaded, ", ".join(report.new))
        if self.cfg.model.freeze == "encoder":
            log.info("encoder frozen: %d of %d parameters train", sum(p.numel() for p in seg.parameters()
                     if p.requires_grad), sum(p.numel() for p in seg.parameters()))
        return seg.to(device)

    def metrics(self, rates: dict[str, float]) -> dict[str, Any]:
        n = self.interval["count"]
        rec: dict[str, Any] = {
            "step": self.step, "time": time.time(), "epoch": self.consumed / len(self.train_ds),
            "train_loss": self.interval["loss_sum"] / n if n else float("nan"),
            "grad_norm": self.interval["gn_sum"] / n if n else float("nan"),
            "skipped_steps": self.skipped, **rates,
        }
        val = self.val_ds if len(self.val_ds) else self.train_ds
        if val is self.train_ds:
            log.warning("no held-out cases (dataset.val_fraction=0 or one case): Dice is measured on "
                        "training cases")
        model = self.ema.model if self.ema is not None else self.model
        rec.update(validate(model, val, self.cfg.dataset.batch_size, self.device, self.autocast))
        self.interval = {"loss_sum": 0.0, "gn_sum": 0.0, "count": 0}
        rec = json_safe(rec)
        self.metrics_log.append(rec)
        dice = " ".join(f"{c}:{v:.3f}" for c, v in rec["val_dice_per_class"].items())
        log.info("%s | dice %.4f (%s)", format_metrics_line(rec, self.cfg.model.iterations), rec["val_dice"], dice)
        self.cb.on_metrics(self.step, rec)
        return rec


def resolve(cfg: FinetuneConfig) -> tuple[FinetuneConfig, Optional[PretrainedSource]]:
    """The config with the pretrained run's choices filled in, and the pretrained weights."""
    if cfg.pretrained is None:
        return cfg, None
    source = read_pretrained(cfg.pretrained)
    return cfg.with_pretrained(source.config), source


def run_finetune(cfg: FinetuneConfig, run_dir: Union[str, Path], callbacks: Optional[TrainCallbacks] = None,
                 resume: bool = True) -> TrainResult:
    """Fine-tune ``cfg`` in ``run_dir``; a folder holding checkpoints continues from the newest."""
    cfg, source = resolve(cfg)
    return FinetuneTrainer(cfg, run_dir, callbacks, source).run(resume=resume)
