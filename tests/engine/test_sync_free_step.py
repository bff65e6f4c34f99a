"""The optimizer step never reads the device back (issue 15): the skip of a non-finite step is
decided on the device (fused Adam's found_inf, a masked EMA), and the loop's counters stay on
the device until the trainer reports."""
from __future__ import annotations

import contextlib
import copy

import pytest
import torch
from train_helpers import NanTrainer, tiny_cfg, write_images

from ddpm.train import NonFiniteLossError, Trainer
from ddpm.train.step import optimizer_step
from ddpm.run.checkpoint import list_checkpoints, load_checkpoint

# every way a tensor's value reaches Python (on CUDA: a wait for the device)
_HOST_READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy")


@contextlib.contextmanager
def no_host_reads():
    """Tensor reads raise for the duration; on CUDA, any synchronising call does too."""
    saved = {name: getattr(torch.Tensor, name) for name in _HOST_READS}

    def refuse(name):
        def read(*args, **kwargs):
            raise AssertionError(f"host read inside the step: Tensor.{name}")
        return read

    for name in _HOST_READS:
        setattr(torch.Tensor, name, refuse(name))
    if torch.cuda.is_available():
        torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        for name, method in saved.items():
            setattr(torch.Tensor, name, method)
        if torch.cuda.is_available():
            torch.cuda.set_sync_debug_mode("default")


def _trainer(tmp_path, cls=Trainer, optimizer="adamw", **model):
    data = write_images(tmp_path / "data")
    # everything the step does: self-conditioning, EMA, accumulation, clipping, weight decay
    cfg = tiny_cfg(data, tmp_path / "exp", model={
        "optimizer": optimizer, "weight_decay": 0.1, "grad_clip": 1.0, "precision": "fp32",
        "unet": {"self_condition": True, "dropout": 0.1}, **model},
        dataset={"grad_accumulation": 2})
    trainer = cls(cfg, tmp_path / "run")
    trainer._setup(resume=False)
    return trainer


def _snapshot(tr):
    return {"model": copy.deepcopy(tr.model.state_dict()), "ema": copy.deepcopy(tr.ema.state_dict()),
            "optimizer": copy.deepcopy(tr.optimizer.state_dict())}


def _assert_same(a, b):
    for part in ("model", "ema"):
        sa, sb = a[part]["model"] if part == "ema" else a[part], b[part]["model"] if part == "ema" else b[part]
        assert all(torch.equal(sa[k], sb[k]) for k in sa), part
    assert a["ema"]["num_updates"] == b["ema"]["num_updates"]
    for key, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][key][name]), (key, name)


def _weights_moved(before, tr):
    return any(not torch.equal(v, before["model"][k]) for k, v in tr.model.state_dict().items())


def test_the_step_makes_no_host_read(tmp_path):
    tr = _trainer(tmp_path, NanTrainer)
    tr.nan_steps = {2}
    loader = iter(tr.loader)  # the data comes from host-side loading: fetched before the guard
    batches = iter([next(loader) for _ in range(3 * 2)])
    before = _snapshot(tr)
    with no_host_reads():
        for _ in range(3):  # a good step, a NaN step, a good step
            out = optimizer_step(tr, batches)
            tr.step += 1
    assert not bool(out.skipped) and _weights_moved(before, tr)
    assert tr.ema.num_updates == 2  # the NaN step did not count
    read = tr.read_tally()
    assert (read.step, read.skipped, read.streak, read.count) == (3, 1, 0, 2)


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_a_nan_step_changes_nothing_and_counts_as_skipped(tmp_path, optimizer):
    tr = _trainer(tmp_path, NanTrainer, optimizer=optimizer)
    tr.nan_steps = {2}
    batches = iter(tr.loader)
    optimizer_step(tr, batches)  # a good step first: the optimizer has moments to protect
    tr.step += 1
    before = _snapshot(tr)
    out = optimizer_step(tr, batches)
    assert bool(out.skipped) and bool(out.nonfinite)
    _assert_same(before, _snapshot(tr))  # weights, EMA and its count, moments and step counts
    read = tr.read_tally()
    assert (read.skipped, read.streak, read.count, read.step) == (1, 1, 1, 2)
    assert read.loss_sum == pytest.approx(read.progress_loss_sum) and read.loss_sum > 0
    assert tr.skipped == 1 and tr.interval["count"] == 1


def test_fp16_overflow_is_skipped_by_the_optimizer_and_lowers_the_scale(tmp_path):
    """The fp16 path on the CPU's GradScaler: an overflowing gradient with a finite loss leaves
    the weights as they were and halves the scale, and is not a non-finite step of the run."""
    tr = _trainer(tmp_path)
    tr.fp16, tr.scaler = True, torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    batches = iter(tr.loader)
    optimizer_step(tr, batches)
    assert tr.scaler.get_scale() == 2.0 ** 10
    before = _snapshot(tr)
    weight = tr.params[0]
    hook = weight.register_hook(lambda g: g * float("inf"))
    out = optimizer_step(tr, batches)
    hook.remove()
    assert bool(out.skipped) and not bool(out.nonfinite)
    _assert_same(before, _snapshot(tr))
    assert tr.scaler.get_scale() == 2.0 ** 9
    read = tr.read_tally()
    assert (read.skipped, read.count) == (0, 2)
    optimizer_step(tr, batches)  # and the next step trains again
    assert _weights_moved(before, tr)


def test_a_streak_is_found_at_the_next_read_and_names_its_step(tmp_path):
    data = write_images(tmp_path / "data")
    cfg = tiny_cfg(data, tmp_path / "exp", model={"iterations": 12, "freq_checkpoint": 10})
    tr = NanTrainer(cfg, tmp_path / "run")
    tr.progress_interval_s = 1e9  # reads: step 1 (the first report), then the checkpoint at 10
    tr.nan_steps = set(range(3, 13))
    with pytest.raises(NonFiniteLossError) as err:
        tr.run()
    assert str(err.value).startswith("training stopped at step 7: 5 consecutive non-finite losses or gradients")
    assert "last good checkpoint: none" in str(err.value)
    assert list_checkpoints(tmp_path / "run" / "checkpoints") == []  # found before writing step 10


def test_a_checkpoint_carries_the_device_counters(tmp_path):
    data = write_images(tmp_path / "data")
    cfg = tiny_cfg(data, tmp_path / "exp", model={"iterations": 4, "freq_checkpoint": 4})
    tr = NanTrainer(cfg, tmp_path / "run")
    tr.progress_interval_s = 1e9
    tr.nan_steps = {3, 4}
    assert tr.run().status == "completed"
    state = load_checkpoint(list_checkpoints(tmp_path / "run" / "checkpoints")[-1].path)
    assert (state["skipped_steps"], state["nonfinite_streak"]) == (2, 2)
    assert state["ema"]["num_updates"] == 2
    resumed = Trainer(cfg, tmp_path / "run")
    resumed._setup(resume=True)
    read = resumed.read_tally()
    assert (read.step, read.skipped, read.streak) == (4, 2, 2)
