"""The ``ddpm`` command: clear one-line errors (exit 2), train end to end, Ctrl-C, sample, export, inspect."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from train_helpers import tiny_cfg_dict, write_images, write_volumes

from ddpm.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _run_main(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def _write_cfg(path: Path, cfg: dict) -> Path:
    path.write_text(json.dumps(cfg))
    return path


def _assert_one_line_error(code, err, *needles):
    assert code == 2, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


def test_bad_configs_flags_and_paths_exit_2_with_one_line(tmp_path, capsys):
    data = write_images(tmp_path / "data", n=4)
    base = tiny_cfg_dict(data, tmp_path / "exp")
    typo = _write_cfg(tmp_path / "typo.json", {**base, "model": {**base["model"], "lr_rate": 1}})
    code, _, err = _run_main(["train", "--config", str(typo)], capsys)
    _assert_one_line_error(code, err, "typo.json", "model.lr_rate", "unknown key")

    bad = _write_cfg(tmp_path / "bad.json", {**base, "dataset": {**base["dataset"], "image_size": 17}})
    code, _, err = _run_main(["train", "--config", str(bad)], capsys)
    _assert_one_line_error(code, err, "dataset.image_size", "divisible")

    (tmp_path / "broken.json").write_text("{\n  \"gpu\": 0,\n}")
    code, _, err = _run_main(["train", "--config", str(tmp_path / "broken.json")], capsys)
    _assert_one_line_error(code, err, "broken.json", "not valid JSON", "line 3")

    code, _, err = _run_main(["train", "--config", str(tmp_path / "nope.json")], capsys)
    _assert_one_line_error(code, err, "nope.json", "does not exist")

    empty = _write_cfg(tmp_path / "empty.json", {**base, "dataset": {**base["dataset"], "path": str(tmp_path / "void")}})
    (tmp_path / "void").mkdir()
    code, _, err = _run_main(["train", "--config", str(empty)], capsys)
    _assert_one_line_error(code, err, "void")

    code, _, err = _run_main(["train", "--config", str(_write_cfg(tmp_path / "fresh.json", base)), "--resume"], capsys)
    _assert_one_line_error(code, err, "--resume", "no checkpoint")

    code, _, err = _run_main(["sample", "--run", str(tmp_path), "--num", "0"], capsys)
    _assert_one_line_error(code, err, "--num", "at least 1")
    code, _, err = _run_main(["sample", "--run", str(tmp_path), "--sampler", "euler"], capsys)
    _assert_one_line_error(code, err, "--sampler", "euler")
    code, _, err = _run_main(["sample", "--run", str(tmp_path / "data")], capsys)
    _assert_one_line_error(code, err, "no checkpoints yet")
    code, _, err = _run_main(["export", "--run", str(tmp_path / "missing"), "--out", str(tmp_path / "m.st")], capsys)
    _assert_one_line_error(code, err, "missing", "no such run folder")
    code, _, err = _run_main(["inspect", str(tmp_path / "nothing")], capsys)
    _assert_one_line_error(code, err, "nothing", "no such file")
    code, _, err = _run_main(["frobnicate"], capsys)
    _assert_one_line_error(code, err, "frobnicate")


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def test_train_end_to_end_then_ctrl_c_resume_sample_export_inspect(tmp_path, capsys, monkeypatch):
    write_volumes(tmp_path / "data", n=4)
    cfg = tiny_cfg_dict("data", "experiments", is_3d=True,  # relative paths: resolved from the cwd
                        model={"iterations": 4, "freq_metrics": 2, "metric_samples": 1})
    _write_cfg(tmp_path / "tiny.json", cfg)
    done = subprocess.run([sys.executable, "-m", "ddpm", "train", "--config", "tiny.json"], cwd=tmp_path,
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "experiments" / "tiny"  # run name = the config file's stem
    assert "step 2/4 | loss" in done.stdout and "step 4/4" in done.stdout and "done: 4 steps" in done.stdout
    assert {p.name for p in run.iterdir()} >= {"checkpoints", "samples", "metrics.jsonl", "config.json",
                                                "run.json", "train.log"}
    assert (run / "samples" / "step-00000004" / "sample-0000.nii.gz").is_file()

    # Ctrl-C: a checkpoint at the current step, exit 130 with one line; the next start resumes
    long = {**cfg, "model": {**cfg["model"], "iterations": 100000, "freq_metrics": 100000}}
    _write_cfg(tmp_path / "long.json", long)
    proc = subprocess.Popen([sys.executable, "-m", "ddpm", "train", "--config", "long.json", "--name", "cc"],
                            cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("training experiments/cc")
        # `ddpm train` re-executed itself (same PID) with tcmalloc preloaded (ddpm/allocator.py;
        # make test installs libtcmalloc-minimal4)
        assert "libtcmalloc_minimal" in Path(f"/proc/{proc.pid}/maps").read_text()
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    last = [l for l in err.splitlines() if l.strip()][-1]
    assert last.startswith("interrupted at step ") and "checkpoint" in last and "Traceback" not in err
    step = int(last.split()[3].rstrip(":"))
    ckpts = [p.name for p in (tmp_path / "experiments" / "cc" / "checkpoints").iterdir()]
    assert ckpts == [f"step-{step:08d}.pt"]
    monkeypatch.chdir(tmp_path)  # the rest runs in-process
    code, out, err = _run_main(["train", "--config", "tiny.json", "--name", "cc", "--resume"], capsys)
    assert code == 0, err
    assert f"resuming experiments/cc from step {step}" in out
    assert f"done: {max(step, 4)} steps" in out  # iterations 4: completes at once if step >= 4

    code, out, err = _run_main(["sample", "--run", str(run), "--num", "2", "--sampler", "ddim", "--steps", "2",
                                "--out", str(tmp_path / "gen")], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == [
        "sample-0000.nii.gz", "sample-0000.png", "sample-0001.nii.gz", "sample-0001.png", "samples.json"]
    code, out, err = _run_main(["export", "--run", str(run), "--out", str(tmp_path / "enc.safetensors"),
                                "--encoder-only"], capsys)
    assert code == 0 and (tmp_path / "enc.safetensors").is_file(), err
    code, out, err = _run_main(["inspect", str(tmp_path / "data"), "--image-size", "16"], capsys)
    assert code == 0 and "vol0.nii.gz" in out, err


@pytest.mark.parametrize("name", ["config_2d.json", "config_3d.json", "presets/tiny_2d.json", "presets/tiny_3d.json"])
def test_shipped_configs_load(name):
    from ddpm.config import load_config

    cfg = load_config(ROOT / "configs" / name)
    if name.startswith("presets/tiny"):
        # run from the repo root after `python scripts/make_example_data.py examples`, on any CPU
        assert cfg.gpu == -1 and cfg.dataset.path.startswith("examples/") and cfg.dataset.num_workers == 0
    if name == "config_2d.json":
        seed3d = load_config(ROOT / "configs" / "config_3d.json")
        assert not cfg.is_3d and cfg.model.unet.self_condition == seed3d.model.unet.self_condition
