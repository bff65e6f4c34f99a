"""A run stopped (or crashed) and resumed gives the same losses and weights as one that never stopped."""
from __future__ import annotations

import json

import pytest
import torch
from train_helpers import Recorder, tiny_cfg, write_images

from ddpm.config import ConfigError
from ddpm.run.checkpoint import list_checkpoints, load_checkpoint
from ddpm.run.errors import RunError
from ddpm.train import Trainer


def _run(cfg, run_dir, stop_at=None, crash_at=None):
    rec = Recorder(stop_at=stop_at)
    if crash_at is not None:
        original = rec.on_progress

        def on_progress(info):
            original(info)
            if info.step == crash_at:
                raise SystemExit("simulated crash")  # dies between checkpoints

        rec.on_progress = on_progress
    trainer = Trainer(cfg, run_dir, rec)
    trainer.progress_interval_s = 0.0  # report every step: per-step losses
    result = None
    try:
        result = trainer.run()
    except SystemExit:
        pass
    return rec, result, trainer


VARIANTS = {
    "flip-mainprocess": dict(dataset={"flip": True}),
    # dropout and self-conditioning draw from the global RNG; a worker process loads the data
    "accum-worker-flip-dropout-selfcond": dict(dataset={"grad_accumulation": 2, "num_workers": 1, "batch_size": 1,
                                                          "flip": True},
                                          model={"unet": {"dropout": 0.1, "self_condition": True}}),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_stop_and_resume_gives_identical_losses(tmp_path, variant):
    data = write_images(tmp_path / "data")
    extra = VARIANTS[variant]
    cfg = tiny_cfg(data, tmp_path / "exp", model={"freq_metrics": 3, **extra.get("model", {})},
                   dataset=extra.get("dataset", {}))
    straight, res_a, tr_a = _run(cfg, tmp_path / "a")
    assert res_a.status == "completed" and res_a.step == 6

    first, res_b1, _ = _run(cfg, tmp_path / "b", stop_at=3)
    assert (res_b1.status, res_b1.step) == ("stopped", 3)
    second, res_b2, tr_b = _run(cfg, tmp_path / "b")
    assert second.started[0][0] == 3 and second.started[0][2] is not None  # resumed, said from where
    assert res_b2.status == "completed" and res_b2.step == 6

    expected = straight.losses()
    got = {**first.losses(), **second.losses()}
    assert sorted(got) == list(range(1, 7))
    for step in range(1, 7):
        assert got[step] == pytest.approx(expected[step], abs=1e-6), f"step {step}"
    for (k, a), b in zip(tr_a.model.state_dict().items(), tr_b.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k
    for a, b in zip(tr_a.ema.model.parameters(), tr_b.ema.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    # metric records (train-loss means, held-out losses) match too
    rows_a = [json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    rows_b = [json.loads(l) for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows_b] == [3, 6]
    for ra, rb in zip(rows_a, rows_b):
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], abs=1e-6)
        assert rb["val_loss"] == pytest.approx(ra["val_loss"], abs=1e-6)


def test_crash_between_checkpoints_resumes_from_the_last_one(tmp_path):
    data = write_images(tmp_path / "data")
    cfg = tiny_cfg(data, tmp_path / "exp", model={"freq_metrics": 1, "freq_checkpoint": 2})
    straight, _, _ = _run(cfg, tmp_path / "a")
    crashed, result, _ = _run(cfg, tmp_path / "b", crash_at=5)
    assert result is None
    assert [c.step for c in list_checkpoints(tmp_path / "b" / "checkpoints")] == [2, 4]
    resumed, result, _ = _run(cfg, tmp_path / "b")
    assert resumed.started[0][0] == 4
    assert result.status == "completed"
    for step in (5, 6):
        assert resumed.losses()[step] == pytest.approx(straight.losses()[step], abs=1e-6)
    # the metric lines the crashed process wrote after step 4 are not duplicated
    steps = [json.loads(l)["step"] for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_resume_refuses_a_different_model_and_a_fresh_start_refuses_an_existing_run(tmp_path):
    data = write_images(tmp_path / "data")
    cfg = tiny_cfg(data, tmp_path / "exp", model={"iterations": 2})
    _run(cfg, tmp_path / "run")
    other = tiny_cfg(data, tmp_path / "exp", model={"iterations": 4, "unet": {"dim": 16}})
    with pytest.raises(ConfigError) as err:
        Trainer(other, tmp_path / "run").run()
    assert err.value.errors[0][0] == "model.unet"
    with pytest.raises(RunError, match="already holds checkpoints"):
        Trainer(cfg, tmp_path / "run").run(resume=False)


def test_longer_iterations_continue_a_completed_run(tmp_path):
    data = write_images(tmp_path / "data")
    _run(tiny_cfg(data, tmp_path / "exp", model={"iterations": 2}), tmp_path / "run")
    rec, result, _ = _run(tiny_cfg(data, tmp_path / "exp", model={"iterations": 4}), tmp_path / "run")
    assert rec.started[0][0] == 2 and result.step == 4
    state = load_checkpoint(result.final_checkpoint)
    assert state["final"] and state["step"] == 4
    assert state["data_order"]["consumed"] == 4 * 2
