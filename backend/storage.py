"""On-disk layout under DATA_DIR and atomic writes.

```
DATA_DIR/
  db.sqlite                      (default database)
  tmp/                           upload temp files (same filesystem: rename is atomic)
  datasets/<id>/files/<path>     uploaded files at their sanitised relative paths
  runs/<job id>/                 one job's run dir (the engine's <experiment_path>/<run name>)
      job.log                    the worker's log of the job (served at /api/jobs/{id}/log)
      export/model.safetensors   EMA weights with the config in the metadata (checkpoint route)
      samples/...                sample files (rows in the samples table point here)
      eval.json                  fine-tune: Dice on the evaluation cases (evaluation route)
      predictions/               fine-tune: label maps of the evaluation cases + predictions.json
      study.json, study.png      study: the label-efficiency result (runs/ holds its runs)
```
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import IO, Iterator, Optional, Union

from ddpm.finetune.study_files import EVAL_FILE

TRASH_PREFIX = "trash-"  # DATA_DIR/tmp entries being deleted (backend.deletion)


class Storage:
    """Paths of one DATA_DIR. Every path it hands out lies inside ``root``."""

    def __init__(self, data_dir: Union[str, Path]):
        self.root = Path(data_dir).expanduser().resolve()

    # folders -----------------------------------------------------------------
    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def runs_dir(self) -> Path:
        """The ``experiment_path`` the backend writes into every train config."""
        return self.root / "runs"

    def ensure(self) -> None:
        for d in (self.tmp_dir, self.datasets_dir, self.runs_dir):
            d.mkdir(parents=True, exist_ok=True)

    def dataset_dir(self, dataset_id: int) -> Path:
        return self.datasets_dir / str(int(dataset_id))

    def dataset_files_dir(self, dataset_id: int) -> Path:
        """The folder a train job's ``dataset.path`` points at."""
        return self.dataset_dir(dataset_id) / "files"

    def run_dir(self, job_id: int) -> Path:
        return self.runs_dir / str(int(job_id))

    def job_log_path(self, job_id: int) -> Path:
        return self.run_dir(job_id) / "job.log"

    def export_path(self, job_id: int) -> Path:
        return self.run_dir(job_id) / "export" / "model.safetensors"

    def checkpoint_candidates(self, job_id: int) -> list[Path]:
        """Where the EMA safetensors export may be, preferred first."""
        run = self.run_dir(job_id)
        return [self.export_path(job_id), run / "model.safetensors",
                run / "checkpoints" / "ema.safetensors"]

    def find_export(self, job_id: int) -> Optional[Path]:
        for p in self.checkpoint_candidates(job_id):
            if p.is_file():
                return p
        return None

    def samples_dir(self, job_id: int) -> Path:
        return self.run_dir(job_id) / "samples"

    def evaluation_path(self, job_id: int) -> Path:
        return self.run_dir(job_id) / EVAL_FILE  # the name a fine-tune run's evaluation has everywhere

    def predictions_dir(self, job_id: int) -> Path:
        return self.run_dir(job_id) / "predictions"

    def predictions_manifest(self, job_id: int) -> Path:
        """[{"case", "label" (file name in predictions/), "image" (relative to DATA_DIR)}]"""
        return self.predictions_dir(job_id) / "predictions.json"

    # mapping between DB paths (relative to root) and absolute paths ----------
    def relative(self, path: Union[str, Path]) -> str:
        """``path`` relative to DATA_DIR, for a DB column; refuses paths outside it."""
        p = Path(path).resolve()
        if not p.is_relative_to(self.root):
            raise ValueError("path lies outside DATA_DIR")
        return p.relative_to(self.root).as_posix()

    def resolve(self, relative: str) -> Optional[Path]:
        """Absolute path of a DB-stored relative path, or None when it would leave DATA_DIR."""
        p = (self.root / relative).resolve()
        return p if p.is_relative_to(self.root) else None

    # removal -----------------------------------------------------------------
    def move_to_trash(self, path: Path, label: str) -> None:
        """Move ``path`` (if present) to ``tmp/trash-<label>-<random>`` in one rename: readers
        never see a half-deleted tree, and a crash leaves a folder whose name says what it was."""
        if not path.exists():
            return
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        os.replace(path, self.tmp_dir / f"{TRASH_PREFIX}{label}-{uuid.uuid4().hex[:12]}")

    def empty_trash(self, label: str) -> None:
        """Delete what ``move_to_trash(..., label)`` put aside (best effort: the sweep retries)."""
        for entry in self.tmp_dir.glob(f"{TRASH_PREFIX}{label}-*"):
            shutil.rmtree(entry, ignore_errors=True)

    def remove_tree(self, path: Path) -> None:
        """Delete a folder: renamed aside first so a half-deleted tree is never seen."""
        label = f"tree-{uuid.uuid4().hex[:12]}"
        self.move_to_trash(path, label)
        self.empty_trash(label)

def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: Union[str, Path], mode: str = "wb") -> Iterator[IO]:
    """Write ``path`` via a temp file in the same folder and rename; readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Union[str, Path], data: bytes) -> None:
    with atomic_writer(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: Union[str, Path], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
