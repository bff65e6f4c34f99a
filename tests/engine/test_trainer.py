"""The training loop: accumulation, EMA warm-up, LR schedule, non-finite guard, stop, metrics."""
from __future__ import annotations

import json
import logging
import math

import pytest
import torch
from train_helpers import NanTrainer, Recorder, tiny_cfg, write_images

from ddpm.config import ConfigError
from ddpm.train import NonFiniteLossError, Trainer, run_training
from ddpm.run.checkpoint import list_checkpoints, load_checkpoint
from ddpm.train.ema import EMA, ema_decay_at
from ddpm.train.lr import lr_factor


class FixedNoiseTrainer(Trainer):
    """The real model, with the step's random draws (timestep, noise) replaced by a function of
    the input, so a batch of 2 and two batches of 1 see exactly the same problem."""

    def build_model(self, device):
        model = super().build_model(device)
        original = model.p_losses

        def p_losses(x0, t, noise=None, reduction="mean"):
            return original(x0, torch.full_like(t, 17), torch.sin(3 * x0 + 1), reduction)

        model.p_losses = p_losses
        return model


def _grads_of_first_step(cfg, run_dir):
    trainer = FixedNoiseTrainer(cfg, run_dir)
    trainer._setup(resume=False)
    seen = {}

    def hook(optimizer, args, kwargs):
        seen["grads"] = [p.grad.detach().clone() for p in trainer.params]

    trainer.optimizer.register_step_pre_hook(hook)
    loss, grad_norm, finite = trainer.train_step(iter(trainer.loader))
    assert finite
    return loss, grad_norm, seen["grads"]


def test_gradient_accumulation_averages_micro_batches(tmp_path):
    data = write_images(tmp_path / "data")
    # fp32: the comparison is of the arithmetic to 1e-5, which bf16 ("auto" on a bf16 CPU) rounds away
    model = {"grad_clip": None, "precision": "fp32"}
    one = tiny_cfg(data, tmp_path / "exp", dataset={"batch_size": 2}, model=model)
    two = tiny_cfg(data, tmp_path / "exp", dataset={"batch_size": 1, "grad_accumulation": 2}, model=model)
    loss_a, norm_a, grads_a = _grads_of_first_step(one, tmp_path / "a")
    loss_b, norm_b, grads_b = _grads_of_first_step(two, tmp_path / "b")
    assert loss_b == pytest.approx(loss_a, rel=1e-5)
    assert norm_b == pytest.approx(norm_a, rel=1e-4)  # a sum would double it
    flat_a = torch.cat([g.flatten() for g in grads_a])
    flat_b = torch.cat([g.flatten() for g in grads_b])
    assert (flat_a - flat_b).abs().max() <= 1e-5 * flat_a.abs().max()


def test_ema_warm_up_decay_and_values():
    assert [round(ema_decay_at(n, 0.999), 6) for n in range(3)] == [0.1, round(2 / 11, 6), 0.25]
    assert ema_decay_at(10_000, 0.999) == 0.999
    assert ema_decay_at(100, 0.9) == 0.9 and ema_decay_at(50, 0.9) == pytest.approx(51 / 60)
    net = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(net.weight)
    ema = EMA(net, decay=0.999)
    with torch.no_grad():
        net.weight.fill_(1.0)
    assert ema.update(net) == pytest.approx(0.1)
    assert ema.model.weight.item() == pytest.approx(0.9)            # 0.1 * 0 + 0.9 * 1
    ema.update(net)
    assert ema.model.weight.item() == pytest.approx(2 / 11 * 0.9 + 9 / 11)
    assert not ema.model.weight.requires_grad


def test_lr_warm_up_then_cosine_or_constant():
    f = [lr_factor(s, 4, 12, "cosine") for s in range(12)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]
    assert f[4] == pytest.approx(1.0) and f[8] == pytest.approx(0.5) and f[11] < 0.05
    assert all(a >= b for a, b in zip(f[4:], f[5:]))
    assert [lr_factor(s, 2, 10, "constant") for s in (0, 1, 2, 9)] == [0.5, 1.0, 1.0, 1.0]


def test_metrics_log_interval_means_samples_and_checkpoints(tmp_path, caplog):
    data = write_images(tmp_path / "data")
    cfg = tiny_cfg(data, tmp_path / "exp", gpu=0, model={
        "iterations": 6, "freq_metrics": 3, "freq_checkpoint": 2, "keep_checkpoints": 1,
        "metric_samples": 2, "warmup_steps": 2})
    rec = Recorder()
    trainer = Trainer(cfg, tmp_path / "run", rec)
    trainer.progress_interval_s = 0.0
    with caplog.at_level(logging.WARNING, logger="ddpm"):
        result = trainer.run()
    if not torch.cuda.is_available():
        assert "CUDA is not available" in caplog.text
    assert result.status == "completed" and result.final_checkpoint.name == "step-00000006-final.pt"
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6] == [s for s, _ in rec.metrics]
    losses = rec.losses()
    assert rows[0]["train_loss"] == pytest.approx(sum(losses[s] for s in (1, 2, 3)) / 3, rel=1e-6)
    assert rows[1]["train_loss"] == pytest.approx(sum(losses[s] for s in (4, 5, 6)) / 3, rel=1e-6)
    assert [p.lr for p in rec.progress[:3]] == pytest.approx([5e-4, 1e-3, 1e-3])  # warm-up
    for r in rows:
        bins = [k for k in r if k.startswith("val_loss_t")]
        assert len(bins) == 8 and math.isfinite(r["val_loss"])
        assert 0.0 <= r["hist_distance"] <= 1.0 and r["sample_mean"] >= 0.0
    assert [s for s, _ in rec.samples] == [3, 6]
    for f in rec.samples[1][1]:
        assert f.preview_path.is_file() and f.shape == (1, 16, 16) and f.volume_path is None
    assert (tmp_path / "run" / "samples" / "step-00000006" / "grid.png").is_file()
    # keep 1 periodic + the final
    assert [(c.step, c.final) for c in list_checkpoints(tmp_path / "run" / "checkpoints")] == [(4, False), (6, True)]
    assert [s for s, _ in rec.checkpoints] == [2, 4, 6]
    p = rec.progress[-1]
    assert (p.step, p.total, p.eta_s) == (6, 6, 0.0) and p.it_s > 0 and p.samples_s == pytest.approx(2 * p.it_s)
    assert {"config.json", "run.json", "train.log"} <= {f.name for f in (tmp_path / "run").iterdir()}
    assert "completed 6 steps" in (tmp_path / "run" / "train.log").read_text()


def test_non_finite_steps_are_skipped_and_repeated_ones_stop(tmp_path):
    data = write_images(tmp_path / "data")
    cfg = tiny_cfg(data, tmp_path / "exp", model={"iterations": 6, "freq_metrics": 3})
    t = NanTrainer(cfg, tmp_path / "a")
    t.nan_steps = {2, 4, 5, 6}
    before = {}

    result = t.run()
    assert result.status == "completed"
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["skipped_steps"] == 1 and math.isfinite(rows[0]["train_loss"])
    # an interval of only skipped steps has no mean: null, so the file stays strict JSON
    assert rows[1]["skipped_steps"] == 4 and rows[1]["train_loss"] is None and rows[1]["grad_norm"] is None

    cfg = tiny_cfg(data, tmp_path / "exp", model={"iterations": 20, "freq_checkpoint": 2})
    t = NanTrainer(cfg, tmp_path / "b")
    t.nan_steps = set(range(3, 21))
    with pytest.raises(NonFiniteLossError, match="step 7: 5 consecutive non-finite"):
        t.run()
    state = load_checkpoint(tmp_path / "b" / "checkpoints" / "step-00000002.pt")
    for k, v in state["model"].items():
        before[k] = v
    # the skipped steps left the weights as they were after step 2
    assert all(torch.equal(before[k], v) for k, v in t.model.state_dict().items())


def test_cooperative_stop_writes_a_checkpoint(tmp_path):
    data = write_images(tmp_path / "data")
    cfg = tiny_cfg(data, tmp_path / "exp", model={"iterations": 50})
    rec = Recorder(stop_at=2)
    result = run_training(cfg, tmp_path / "run", rec)
    assert (result.status, result.step) == ("stopped", 2)
    assert result.final_checkpoint.name == "step-00000002.pt"
    assert rec.checkpoints == [(2, result.final_checkpoint)]
    state = load_checkpoint(result.final_checkpoint)
    assert state["step"] == 2 and not state["final"]


def test_fp16_on_cpu_is_a_clear_config_error_and_bf16_trains(tmp_path):
    data = write_images(tmp_path / "data")
    with pytest.raises(ConfigError) as err:
        run_training(tiny_cfg(data, tmp_path / "exp", gpu=-1, model={"precision": "fp16"}), tmp_path / "a")
    assert err.value.errors[0][0] == "model.precision" and "CUDA" in err.value.errors[0][1]
    result = run_training(tiny_cfg(data, tmp_path / "exp", model={"precision": "bf16", "iterations": 2}),
                          tmp_path / "b")
    assert result.status == "completed"


def test_the_trainer_reports_its_phases_and_the_data_counts(tmp_path):
    """Issue 13 item 4: before its first step the loop says what it is doing, the data checks
    count the files of both splits, and metric steps are an "evaluating" phase."""
    data = write_images(tmp_path / "data", n=8)
    cfg = tiny_cfg(data, tmp_path / "exp", model={"iterations": 4, "freq_metrics": 2})
    phases: list[tuple] = []

    class Phases(Recorder):
        def on_phase(self, phase, done=None, total=None):  # noqa: ANN001
            phases.append((phase, done, total, len(self.started)))

    assert Trainer(cfg, tmp_path / "run", Phases()).run().status == "completed"
    names = [p[0] for p in phases]
    firsts = [names.index(n) for n in ("preparing data", "checking files", "hashing files",
                                       "building model", "training", "evaluating")]
    assert firsts == sorted(firsts), names
    assert [p[1:3] for p in phases if p[0] == "checking files"] == [(i, 8) for i in range(1, 9)]
    assert all(started == 0 for name, _, _, started in phases[:names.index("training") + 1])  # all before on_start
    assert names.count("evaluating") == 2 and names[-1] == "training"  # back to training after each
