"""The engine child's side of fine-tune and study jobs (``worker.runner`` calls these).

A fine-tune job trains (``ddpm.finetune.trainer.run_finetune`` through ``worker.rank_loop``, as
one process or as the job's ``gpus`` ranks, resuming from the run's newest checkpoint), then
evaluates the model and writes the label maps of the evaluation cases: the evaluation dataset
when the job names one, else the held-out split the run validated on (cases it never trained on).
A study job runs ``ddpm.finetune.study.run_study`` in the job's run dir (one process); without an
evaluation dataset it first sets a held-out share of the labelled dataset aside for evaluation
(``dataset.val_fraction``, drawn with ``seed``), so no run is scored on cases it saw. Both are
idempotent, so a resumed or recovered job simply runs them again.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Optional

from backend.run_spec import FinetuneRunSpec, StudyRunSpec
from ddpm.config import FinetuneConfig

log = logging.getLogger("worker.finetune_run")


def _link_pairs(pairs: list, out: Path) -> Path:
    """A labelled folder (images/ + labels/) of symlinks to ``pairs``, rebuilt from scratch."""
    from ddpm.data.io import file_ext

    if out.exists():
        shutil.rmtree(out)
    for sub in ("images", "labels"):
        (out / sub).mkdir(parents=True)
    for pair in pairs:  # named by case, so an nnU-Net image loses its _0000 and still pairs
        os.symlink(pair.image.resolve(), out / "images" / f"{pair.case}{file_ext(pair.image)}")
        os.symlink(pair.label.resolve(), out / "labels" / f"{pair.case}{file_ext(pair.label)}")
    return out


def split_pairs(cfg: FinetuneConfig) -> tuple[list, list]:
    """(train, held-out) pairs of the labelled dataset: the split fine-tuning validates on."""
    from ddpm.data.datasets import split_files
    from ddpm.finetune.labelled import labelled_pairs

    pairs = labelled_pairs(cfg.dataset.path, cfg.task.num_classes)
    by_image = {p.image: p for p in pairs}
    train, held = split_files([p.image for p in pairs], cfg.dataset.val_fraction, cfg.seed, Path(cfg.dataset.path))
    if set(train) & set(held):
        log.warning("the held-out split shares cases with training (one case, or val_fraction 0): "
                    "its Dice is measured on training cases")
    return [by_image[f] for f in train], [by_image[f] for f in held]


def _flat(metrics: dict[str, Any]) -> dict[str, Any]:
    """One number per key (REST metric rows): {"val_dice_per_class": {"1": x}} -> val_dice_1."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            stem = "val_dice" if key == "val_dice_per_class" else key
            out.update({f"{stem}_{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


class FinetuneCallbacks:
    """The worker's callbacks for a fine-tune run: metric rows flattened to numbers; with
    ``offset``/``grand_total`` (a study) every step counts in the whole study."""

    def __init__(self, inner: Any, offset: int = 0, grand_total: Optional[int] = None) -> None:
        self.inner, self.offset, self.grand_total = inner, offset, grand_total

    def __getattr__(self, name: str) -> Any:  # hooks not changed here go straight through
        return getattr(self.inner, name)

    def _total(self, total: int) -> int:
        return self.grand_total if self.grand_total is not None else total

    def on_start(self, step: int, total: int, resumed_from: Any) -> None:
        self.inner.on_start(self.offset + step, self._total(total), resumed_from)

    def on_progress(self, info: Any) -> None:
        d = info.to_dict() if hasattr(info, "to_dict") else dict(info)
        d["step"] = self.offset + d["step"]
        if self.grand_total is not None:
            d["total"] = self.grand_total
            it_s = d.get("it_s") or 0
            d["eta_s"] = (self.grand_total - d["step"]) / it_s if it_s > 0 else None
        self.inner.on_progress(d)

    def on_metrics(self, step: int, metrics: dict) -> None:
        self.inner.on_metrics(self.offset + step, _flat({**metrics, "step": self.offset + step}))

    def on_checkpoint(self, step: int, path: Any) -> None:
        self.inner.on_checkpoint(self.offset + step, path)


def _evaluate_and_predict(spec: FinetuneRunSpec, eval_dir: Path, cb: Any) -> dict[str, Any]:
    from ddpm.finetune.inference import (case_name, evaluate_folder, images_of, load_finetuned, predict_file,
                                         write_evaluation, write_label_map)

    paths = spec.paths
    run = load_finetuned(paths.run_dir, device=spec.device)
    evaluation = evaluate_folder(run, eval_dir)
    write_evaluation(evaluation, paths.evaluation_path)
    paths.predictions_dir.mkdir(parents=True, exist_ok=True)
    manifest = []
    images = images_of(eval_dir)
    for done, image in enumerate(images):  # counted, so the supervisor sees a long pass is alive
        cb.on_phase("predicting", done, len(images))
        labels, header = predict_file(run, image)
        out = write_label_map(labels, header, paths.predictions_dir)
        manifest.append({"case": case_name(image), "label": out.name,
                         "image": Path(os.path.realpath(image)).relative_to(paths.data_dir).as_posix()})
    paths.predictions_manifest.write_text(json.dumps(manifest, indent=2) + "\n")
    return evaluation


def _export(spec: FinetuneRunSpec) -> None:
    """The segmenter where GET /api/jobs/{id}/checkpoint serves it (``ddpm export``'s layout)."""
    from ddpm.export import export_run

    spec.paths.export_path.parent.mkdir(parents=True, exist_ok=True)
    export_run(spec.paths.run_dir, spec.paths.export_path, use_ema=spec.params.config.model.use_ema)


def finish_finetune_job(spec: FinetuneRunSpec, result: Any, cb: Any) -> dict[str, Any]:
    """After the fine-tune loop (``worker.rank_loop.run_loop``, resumed from the run's newest
    checkpoint, in one process or several): export, evaluate and predict, in this process."""
    cfg = spec.params.config
    if result.status == "stopped":
        return {"stopped": True, "step": result.step}
    _export(spec)
    cb.on_phase("evaluating")
    if spec.params.eval_data:
        eval_dir = Path(spec.params.eval_data)
    else:
        eval_dir = _link_pairs(split_pairs(cfg)[1], spec.paths.run_dir / "heldout")
    evaluation = _evaluate_and_predict(spec, eval_dir, cb)
    log.info("job %s: mean Dice %.4f on %d evaluation cases", spec.job_id, evaluation["mean_dice"],
             len(evaluation["cases"]))
    return {"stopped": False, "step": result.step, "mean_dice": evaluation["mean_dice"]}


def run_study_job(spec: StudyRunSpec, cb: Any) -> dict[str, Any]:
    from ddpm.finetune.study import run_study

    params, run_dir = spec.params, spec.paths.run_dir
    cfg = params.config
    if params.eval_data:
        eval_dir = Path(params.eval_data)
    else:  # the evaluation cases first, then the study's runs draw from the rest
        train, held = split_pairs(cfg)
        eval_dir = _link_pairs(held, run_dir / "data" / "eval")
        train_dir = _link_pairs(train, run_dir / "data" / "train")
        cfg = cfg.model_copy(update={"dataset": cfg.dataset.model_copy(update={"path": str(train_dir)})})
    iterations = cfg.model.iterations
    watcher = FinetuneCallbacks(cb, 0, spec.total_steps)

    def progress(event: Any) -> None:
        watcher.offset = (event.index - 1) * iterations
        if event.phase == "evaluating":
            cb.on_phase("evaluating")
        if event.phase in ("skipped", "finished"):
            log.info("study run %d/%d %s: %s, Dice %.4f", event.index, event.total, event.run.name,
                     event.phase, event.mean_dice)
            cb.on_progress({"step": event.index * iterations, "total": spec.total_steps})

    result = run_study(cfg, params.labels, params.seeds, eval_dir, run_dir, watcher, progress)
    done = len(result.study["runs"])
    return {"stopped": result.status == "stopped", "step": done * iterations, "runs_done": done}
