"""The on-disk layout of one training run.

<experiment_path>/<run name>/
  config.json       the TrainConfig of the latest start (load_config reads it back)
  run.json          facts the config cannot hold: output_spacing (mm per voxel of the
                    training tensors, for sample affines), dims, run name, and one entry per
                    start (at, step, device, the precision used and why: ddpm.precision)
  train.log         human-readable log (resume notices, metric lines, warnings)
  metrics.jsonl     one JSON object per metric step
  checkpoints/      step-XXXXXXXX.pt, step-XXXXXXXX-final.pt (see checkpoint.py)
  samples/          step-XXXXXXXX/sample-NNNN.png (+ .nii.gz for 3D): EMA previews per metric step
"""
from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from .atomic import atomic_write_text


class RunPaths:
    def __init__(self, root: Union[str, Path]) -> None:
        self.root = Path(root)
        self.checkpoints = self.root / "checkpoints"
        self.samples = self.root / "samples"
        self.metrics = self.root / "metrics.jsonl"
        self.config = self.root / "config.json"
        self.run_json = self.root / "run.json"
        self.log = self.root / "train.log"

    def create(self) -> None:
        for d in (self.root, self.checkpoints, self.samples):
            d.mkdir(parents=True, exist_ok=True)

    def samples_at(self, step: int) -> Path:
        return self.samples / f"step-{step:08d}"

    def read_run_json(self) -> dict[str, Any]:
        try:
            return json.loads(self.run_json.read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    def write_json(self, path: Path, data: dict[str, Any]) -> None:
        atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def run_name_for(config_path: Union[str, Path], name: Optional[str] = None) -> str:
    """The run's folder name: ``name`` if given, else the config file's stem."""
    if name is not None:
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"--name {name!r}: must be a plain folder name")
        return name
    return Path(config_path).stem


def run_dir_for(experiment_path: str, config_path: Union[str, Path], name: Optional[str] = None) -> Path:
    return Path(experiment_path) / run_name_for(config_path, name)


@contextmanager
def log_to_file(path: Path, logger: logging.Logger) -> Iterator[None]:
    """Append the logger's records to the run's train.log while training runs."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    logger.addHandler(handler)
    old_level = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        handler.close()


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
