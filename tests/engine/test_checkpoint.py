"""Checkpoint files: a crash mid-save never costs the previous checkpoint; pruning; RNG round trip."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import Recorder, tiny_cfg, write_images

from ddpm.run import atomic
from ddpm.run import checkpoint as ck
from ddpm.run.errors import RunError
from ddpm.train import Trainer

ROOT = Path(__file__).resolve().parents[2]


def test_failed_rename_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    data = write_images(tmp_path / "data")
    cfg = tiny_cfg(data, tmp_path / "exp", model={"iterations": 4, "freq_checkpoint": 2})
    real_replace = os.replace

    def crash_on_second(src, dst):
        if str(dst).endswith("step-00000004-final.pt"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", crash_on_second)
    with pytest.raises(OSError, match="No space"):
        Trainer(cfg, tmp_path / "run", Recorder()).run()
    ckdir = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in ckdir.iterdir()) == ["step-00000002.pt"]  # temporary removed
    assert ck.load_checkpoint(ck.latest_checkpoint(ckdir).path)["step"] == 2
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    rec = Recorder()
    result = Trainer(cfg, tmp_path / "run", rec).run()
    assert rec.started[0][0] == 2 and result.step == 4


def test_process_killed_mid_write_leaves_the_previous_checkpoint(tmp_path):
    """A real crash: the writing process is SIGKILLed half-way through the bytes."""
    script = textwrap.dedent(f"""
        import sys, time, torch
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from ddpm.run import checkpoint as ck
        from ddpm.run.atomic import atomic_write_bytes
        d = Path({str(tmp_path / "ck")!r})
        ck.save_checkpoint({{"model": {{"w": torch.ones(3)}}}}, d, 1)
        def slow(fh):
            fh.write(b"PK" + b"x" * 100000)   # half a file...
            fh.flush()
            print("writing", flush=True)
            time.sleep(60)                   # ...and the process dies here
        atomic_write_bytes(d / ck.checkpoint_name(2), slow)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    d = tmp_path / "ck"
    names = sorted(p.name for p in d.iterdir())
    assert len(names) == 2 and "step-00000001.pt" in names
    assert any(n.startswith(".step-00000002.pt.tmp-") for n in names)  # the partial file
    latest = ck.latest_checkpoint(d)
    assert latest.step == 1
    assert torch.equal(ck.load_checkpoint(latest.path)["model"]["w"], torch.ones(3))
    ck.remove_stale_temporaries(d)
    assert sorted(p.name for p in d.iterdir()) == ["step-00000001.pt"]


def test_keep_last_n_and_the_final(tmp_path):
    d = tmp_path / "ck"
    for step in range(1, 6):
        ck.save_checkpoint({}, d, step)
    ck.save_checkpoint({}, d, 6, final=True)
    removed = ck.prune_checkpoints(d, keep=2)
    assert sorted(p.name for p in removed) == [f"step-0000000{i}.pt" for i in (1, 2, 3)]
    assert [(c.step, c.final) for c in ck.list_checkpoints(d)] == [(4, False), (5, False), (6, True)]
    # a later final (run extended) protects only the newest final
    ck.save_checkpoint({}, d, 8, final=True)
    ck.prune_checkpoints(d, keep=1)
    assert [(c.step, c.final) for c in ck.list_checkpoints(d)] == [(6, True), (8, True)]
    ck.prune_checkpoints(d, keep=1)
    assert ck.latest_checkpoint(d).step == 8


def test_rng_states_round_trip_through_a_checkpoint(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    path = ck.save_checkpoint({"rng": ck.capture_rng()}, tmp_path, 1)
    expected = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)])
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    ck.restore_rng(ck.load_checkpoint(path)["rng"])  # weights_only load
    assert torch.equal(torch.rand(4), expected[0])
    assert np.array_equal(np.random.rand(4), expected[1])
    assert [random.random() for _ in range(4)] == expected[2]


def test_unreadable_checkpoints_are_named(tmp_path):
    bad = tmp_path / "step-00000001.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(RunError, match="step-00000001.pt cannot be read"):
        ck.load_checkpoint(bad)
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(RunError, match="not a DDPM Studio checkpoint"):
        ck.load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(RunError, match="does not exist"):
        ck.load_checkpoint(tmp_path / "missing.pt")
