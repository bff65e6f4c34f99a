"""A metric step's preview samples are drawn by every process together (issue 15): each sample
comes from its own seeded generator, so 2 processes on CPU (gloo) write the sample files and the
metric record of 1 process."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_distributed import _cfg, _cli, _in_process
from train_helpers import write_images

# what a record holds that depends on the clock, not on the training
_TIMING = {"time", "it_s", "samples_s", "elapsed_s", "sample_time_s"}


def _records(tmp: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (tmp / "exp" / name / "metrics.jsonl").read_text().splitlines()]


def _pixels(tmp: Path, name: str, step: int) -> dict[str, np.ndarray]:
    folder = tmp / "exp" / name / "samples" / f"step-{step:08d}"
    return {p.name: np.asarray(Image.open(p)).astype(int) for p in sorted(folder.glob("*.png"))}


def test_two_processes_write_the_metric_samples_of_one(tmp_path):
    write_images(tmp_path / "data")
    # 3 samples on 2 processes: rank 0 draws samples 0 and 2, rank 1 sample 1
    model = {"iterations": 4, "freq_metrics": 2, "freq_checkpoint": 4, "metric_samples": 3}
    _in_process(_cfg(tmp_path, "one", **model))
    done = _cli(_cfg(tmp_path, "two", **model), "--nproc", "2")
    assert done.returncode == 0, done.stderr[-2000:]

    for step in (2, 4):
        one, two = _pixels(tmp_path, "one", step), _pixels(tmp_path, "two", step)
        assert sorted(one) == sorted(two) == ["grid.png"] + [f"sample-{i:04d}.png" for i in range(3)]
        for name in one:  # the two runs' weights agree to ~1e-6, so a pixel may round the other way
            assert np.abs(one[name] - two[name]).max() <= 1, (step, name)
        # each sample from its own generator: three different images
        assert not np.array_equal(one["sample-0000.png"], one["sample-0001.png"])
        assert not np.array_equal(one["sample-0001.png"], one["sample-0002.png"])

    rec_one, rec_two = _records(tmp_path, "one"), _records(tmp_path, "two")
    assert [r["step"] for r in rec_one] == [r["step"] for r in rec_two] == [2, 4]
    for a, b in zip(rec_one, rec_two):
        assert set(a) == set(b) and {"val_loss", "hist_distance", "intensity_w1", "sample_time_s"} <= set(a)
        for key in set(a) - _TIMING:
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key
