"""`ddpm study` on a tiny labelled 3D set: both arms at every budget and seed with equal
iterations, study.json's numbers from the runs' own evaluations, a stopped study resumed
without redoing finished runs, the plot, and bad input as one line."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from finetune_helpers import ft_dict, pretrain, write_json, write_labelled
from PIL import Image
from train_helpers import Recorder

from ddpm.cli import main
from ddpm.config import load_finetune_config
from ddpm.finetune.dataset import build_labelled_datasets
from ddpm.finetune.study import run_study
from ddpm.finetune.study_plot import COLOURS
from ddpm.run.checkpoint import latest_checkpoint

STEPS = 4


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(config file of a pretrained study, held-out folder, module scratch folder)."""
    tmp = tmp_path_factory.mktemp("study")
    data = write_labelled(tmp / "labelled", n=5)  # val_fraction 0.2: 4 cases to draw from
    heldout = write_labelled(tmp / "heldout", n=2, start=20)
    run = pretrain(tmp, data / "images")
    cfg = ft_dict(data, tmp / "exp", run, model={"iterations": STEPS, "freq_metrics": STEPS})
    return write_json(tmp / "ft.json", cfg), heldout, tmp


def _json(path):
    return json.loads(path.read_text())


def test_study_runs_both_arms_alike_and_summarises_their_evaluations(setup, capsys):
    config, heldout, tmp = setup
    out = tmp / "s1"
    assert main(["study", "--config", str(config), "--labels", "2,1", "--seeds", "2",
                 "--eval", str(heldout), "--out", str(out)]) == 0
    study = _json(out / "study.json")
    assert study["complete"] is True and study["budgets"] == [1, 2] and study["seeds"] == [1, 2]
    assert study["iterations"] == STEPS
    runs = study["runs"]
    assert sorted((r["arm"], r["labelled_cases"], r["seed"]) for r in runs) == sorted(
        itertools.product(["pretrained", "scratch"], [1, 2], [1, 2]))

    configs = {}
    for r in runs:
        run_dir = out / r["run"]
        saved = _json(run_dir / "config.json")
        ckpt = latest_checkpoint(run_dir / "checkpoints")
        assert ckpt.final and ckpt.step == STEPS == r["iterations"] == saved["model"]["iterations"]
        assert json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["step"] == STEPS
        assert (saved["seed"], saved["dataset"]["labelled_cases"]) == (r["seed"], r["labelled_cases"])
        assert (saved["pretrained"] is None) == (r["arm"] == "scratch")
        evaluation = _json(out / r["eval"])
        assert [c["file"] for c in evaluation["cases"]] == ["images/case20.nii.gz", "images/case21.nii.gz"]
        assert r["mean_dice"] == evaluation["mean_dice"] and r["per_class"] == evaluation["per_class"]
        configs[r["arm"], r["labelled_cases"], r["seed"]] = saved

    for budget, seed in itertools.product([1, 2], [1, 2]):
        scratch, pre = configs["scratch", budget, seed], configs["pretrained", budget, seed]
        assert scratch["model"]["unet"] == pre["model"]["unet"]  # the same architecture
        assert {k: v for k, v in scratch["model"].items() if k != "unet"} == \
               {k: v for k, v in pre["model"].items() if k != "unet"}  # the same training
        # the same labelled cases and held-out split
        s_train, s_val = build_labelled_datasets(load_finetune_config(scratch))
        p_train, p_val = build_labelled_datasets(load_finetune_config(pre))
        assert s_train.pairs == p_train.pairs and len(p_train) == budget and s_val.pairs == p_val.pairs

    for row in study["summary"]:
        for arm in ("scratch", "pretrained"):
            dice = [r["mean_dice"] for r in runs if r["arm"] == arm and r["labelled_cases"] == row["labelled_cases"]]
            assert row[arm] == pytest.approx({"mean": np.mean(dice), "sd": np.std(dice, ddof=1), "n": 2})
        assert row["gain"] == pytest.approx(row["pretrained"]["mean"] - row["scratch"]["mean"])

    table = capsys.readouterr().out
    assert f"{study['summary'][1]['pretrained']['mean']:.3f}" in table
    with Image.open(out / "study.png") as png:
        png.verify()
    with Image.open(out / "study.png") as png:
        assert png.format == "PNG" and 600 <= png.width <= 1600 and 400 <= png.height <= 1200
        pixels = set(png.convert("RGB").getdata())
    assert all(colour in pixels for colour in COLOURS.values())  # both curves are drawn


class StopInSecondRun(Recorder):
    """Asks to stop before the third step of the second run it watches."""

    def should_stop(self) -> bool:
        self.calls += 1
        return len(self.started) == 2 and self.calls > 2

    def on_start(self, step, total, resumed_from):
        super().on_start(step, total, resumed_from)
        self.calls = 0


def test_a_stopped_study_resumes_without_redoing_finished_runs(setup, capsys):
    config, heldout, tmp = setup
    cfg, out = load_finetune_config(config), tmp / "s2"
    stopper = StopInSecondRun()
    stopped = run_study(cfg, [1], 1, heldout, out, stopper)
    assert stopped.status == "stopped" and len(stopped.study["runs"]) == 1
    assert _json(out / "study.json")["complete"] is False
    first, second = out / "runs" / "scratch-n1-s1", out / "runs" / "pretrained-n1-s1"
    assert latest_checkpoint(second / "checkpoints").step == 2
    finished = {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()}

    events, watcher = [], Recorder()
    done = run_study(cfg, [1], 1, heldout, out, watcher, events.append)
    assert done.status == "completed" and done.study["complete"] is True and len(done.study["runs"]) == 2
    assert [(e.run.name, e.phase) for e in events] == [
        ("scratch-n1-s1", "skipped"), ("pretrained-n1-s1", "training"),
        ("pretrained-n1-s1", "evaluating"), ("pretrained-n1-s1", "finished")]
    assert [(step, resumed.name) for step, _, resumed in watcher.started] == [(2, "step-00000002.pt")]
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()} == finished

    capsys.readouterr()
    assert main(["study", "--config", str(config), "--labels", "1", "--seeds", "1",
                 "--eval", str(heldout), "--out", str(out)]) == 0  # nothing left to train
    assert capsys.readouterr().out.count("done before") == 2

    changed = write_json(tmp / "ft_more.json", {**_json(config), "model": {"iterations": STEPS + 1}})
    assert main(["study", "--config", str(changed), "--eval", str(heldout), "--out", str(out), "--labels", "1"]) == 2
    err = capsys.readouterr().err
    assert "holds a study of another config" in err and "model.iterations 4 -> 5" in err and err.count("\n") == 1


def test_bad_study_input_exits_2_with_one_line_naming_it(setup, tmp_path, capsys):
    config, heldout, tmp = setup
    raw = _json(config)
    scratch = write_json(tmp_path / "scratch.json", {**raw, "pretrained": None})
    cases = [
        (["--config", str(scratch), "--eval", str(heldout)], "pretrained: a study compares a pretrained run"),
        (["--config", str(config), "--eval", str(heldout), "--labels", "1,5"], "--labels 5: more than the 4"),
        (["--config", str(config), "--eval", str(tmp_path / "none"), "--labels", "1"], "none is not a folder"),
        (["--config", str(config), "--eval", str(heldout), "--labels", "0,2"], "give label budgets >= 1"),
    ]
    for args, message in cases:
        capsys.readouterr()
        try:
            code = main(["study", *args, "--out", str(tmp_path / "out")])
        except SystemExit as exc:  # a flag argparse refused
            code = exc.code
        assert code == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
