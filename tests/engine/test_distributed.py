"""One job on several processes (CPU, gloo, 2 processes): `ddpm train --nproc 2`, torchrun with two
"nodes" on this machine, resume across process counts, and a rank killed with SIGKILL.

The reference is one process on the same config, trained in this test process: the global batch
(dataset.batch_size x grad_accumulation), the data order and the random numbers of every sample
do not depend on the number of processes, so two processes must give the same losses and weights.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from train_helpers import tiny_cfg_dict, write_images

from ddpm.config import load_config
from ddpm.diffusion import DDPM
from ddpm.run.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from ddpm.train import run_training

ROOT = Path(__file__).resolve().parents[2]
STEPS = 20


def _cfg(tmp: Path, name: str, **model) -> Path:
    # self-conditioning (the mask) and accumulation (DDP's no_sync) are on; fp32 explicitly: auto
    # picks bf16 on a CPU with native bf16, where two processes would round differently
    cfg = tiny_cfg_dict(tmp / "data", tmp / "exp", seed=5, model={
        "iterations": STEPS, "freq_metrics": 1, "freq_checkpoint": 10, "precision": "fp32",
        "unet": {"self_condition": True}, **model}, dataset={"batch_size": 4, "grad_accumulation": 2})
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(cfg))
    return path


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _cli(config: Path, *flags: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ddpm", "train", "--config", str(config), *flags],
                          cwd=config.parent, env=_env(), capture_output=True, text=True, timeout=timeout)


def _in_process(config: Path) -> None:
    run_training(load_config(config), config.parent / "exp" / config.stem)


def _losses(tmp: Path, name: str) -> list[float]:
    lines = (tmp / "exp" / name / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["train_loss"] for line in lines]


def _model(tmp: Path, name: str, ema: bool = False) -> DDPM:
    state = load_checkpoint(latest_checkpoint(tmp / "exp" / name / "checkpoints").path)
    model = DDPM.from_config(load_config(tmp / "one.json"), device="cpu")
    model.load_state_dict(state["ema"]["model"] if ema else state["model"])
    return model


def _inputs(model: DDPM) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 1, 16, 16, generator=g) * 2 - 1
    return x0, torch.randint(0, model.num_timesteps, (4,), generator=g), torch.randn(x0.shape, generator=g)


def _assert_same_model(tmp: Path, name: str) -> None:
    """Same weights as the one-process reference, within 1e-5 relative: the weights the loss
    depends on, and the function both compute (raw and EMA). A bias that a GroupNorm right after
    it cancels (and the attention key bias) has an exactly zero gradient; Adam turns the rounding
    noise of that zero into full-size steps, so such entries differ and are not compared."""
    ref = _model(tmp, "one").double()
    x0, t, noise = _inputs(ref)
    ref.p_losses(x0.double(), t, noise.double(), self_cond_mask=torch.ones(4, dtype=torch.bool)).backward()
    live = {k: p.grad.abs() > 1e-12 for k, p in ref.named_parameters()}
    diff = total = 0.0
    for ema in (False, True):
        a, b = _model(tmp, "one", ema).eval(), _model(tmp, name, ema).eval()
        pb = dict(b.named_parameters())
        for key, pa in a.named_parameters():
            diff += float((pa - pb[key]).detach()[live[key]].square().sum())
            total += float(pa.detach()[live[key]].square().sum())
        with torch.no_grad():
            x_t = a.q_sample(x0, t, noise)
            out_a, out_b = a.unet(x_t, t, torch.zeros_like(x_t)), b.unet(x_t, t, torch.zeros_like(x_t))
        assert float((out_a - out_b).norm() / out_a.norm()) <= 1e-5, f"{name} (ema={ema}): outputs differ"
    assert (diff / total) ** 0.5 <= 1e-5, f"{name}: relative weight difference {(diff / total) ** 0.5:.2e}"


@pytest.fixture(scope="module")
def one(tmp_path_factory):
    """The reference: 20 steps in one process."""
    tmp = tmp_path_factory.mktemp("ddp")
    write_images(tmp / "data")
    _in_process(_cfg(tmp, "one"))
    return tmp


def test_two_processes_train_like_one(one):
    done = _cli(_cfg(one, "two"), "--nproc", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("done: 20 steps") == 1  # rank 0 reports, once
    assert _losses(one, "two") == pytest.approx(_losses(one, "one"), rel=1e-5)
    assert len(_losses(one, "two")) == STEPS
    _assert_same_model(one, "two")
    starts = json.loads((one / "exp" / "two" / "run.json").read_text())["starts"]
    assert [s["world_size"] for s in starts] == [2]


def test_resume_across_process_counts(one):
    # 2 processes for 10 steps, then 1 process to 20
    first = _cli(_cfg(one, "two_one", iterations=10), "--nproc", "2")
    assert first.returncode == 0, first.stderr
    _in_process(_cfg(one, "two_one"))
    # 1 process for 10 steps, then 2 processes to 20
    _in_process(_cfg(one, "one_two", iterations=10))
    second = _cli(_cfg(one, "one_two"), "--nproc", "2")
    assert second.returncode == 0, second.stderr
    assert "resuming" in second.stdout and "from step 10" in second.stdout
    for name in ("two_one", "one_two"):
        assert _losses(one, name) == pytest.approx(_losses(one, "one"), rel=1e-5), name
        _assert_same_model(one, name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_torchrun_nodes_with_c10d_rendezvous(one):
    config = _cfg(one, "nodes")
    node = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
            "--rdzv-backend", "c10d", "--rdzv-endpoint", f"localhost:{_free_port()}", "--rdzv-id", "nodes",
            "-m", "ddpm", "train", "--config", str(config)]
    procs = [subprocess.Popen(node, cwd=one, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True) for _ in range(2)]
    try:
        outs = [p.communicate(timeout=180) for p in procs]
    finally:
        for p in procs:
            _end(p)
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    assert sum(out.count("done: 20 steps") for out, _ in outs) == 1
    _assert_same_model(one, "nodes")


def _rank_pid(parent: int, rank: int, timeout: float = 60) -> int:
    """The pid of the process of ``rank`` among ``parent``'s children (the agent's workers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                env = (proc / "environ").read_bytes().split(b"\0")
            except (OSError, ValueError, IndexError):
                continue
            if ppid == parent and f"RANK={rank}".encode() in env:
                return int(proc.name)
        time.sleep(0.1)
    raise AssertionError(f"no rank {rank} under pid {parent}")


def _end(proc: subprocess.Popen) -> None:
    """A job left running by a failed assertion takes its processes with it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _kill_rank_after_checkpoint(config: Path, *flags: str) -> tuple[subprocess.Popen, str, str]:
    job = subprocess.Popen([sys.executable, "-m", "ddpm", "train", "--config", str(config), "--nproc", "2",
                            *flags], cwd=config.parent, env=_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        ckpt = config.parent / "exp" / config.stem / "checkpoints" / "step-00000005.pt"
        deadline = time.monotonic() + 120
        while not ckpt.exists() and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ckpt.exists(), job.communicate()[1][-2000:] if job.poll() is not None else "no checkpoint"
        os.kill(_rank_pid(job.pid, 1), signal.SIGKILL)
        out, err = job.communicate(timeout=180)
    finally:
        _end(job)
    return job, out, err


def test_a_killed_rank_ends_the_job_with_one_line(one):
    job, _, err = _kill_rank_after_checkpoint(_cfg(one, "killed", iterations=400, freq_checkpoint=5))
    assert job.returncode == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("ddpm train: failed: rank 1 (pid ") and "was killed by SIGKILL" in last, err[-2000:]
    assert "Traceback" not in err


def test_with_restarts_a_killed_rank_resumes_and_finishes(one):
    config = _cfg(one, "restarted", iterations=30, freq_checkpoint=5)
    # two restarts allowed: the kill uses one, the other is the margin restarts are for (a rank
    # once aborted in the interpreter's teardown, since avoided by ddpm.cli.entry's os._exit)
    job, out, err = _kill_rank_after_checkpoint(config, "--max-restarts", "2")
    assert job.returncode == 0, err[-2000:]
    assert "resuming" in out and "done: 30 steps" in out
    # the same training as the uninterrupted reference over the steps both ran
    assert _losses(one, "restarted")[:STEPS] == pytest.approx(_losses(one, "one"), rel=1e-5)


def _vote_rank(rank: int, port: int, cast: Any, results: Any) -> None:
    """Rank 0 votes first while rank 1 waits until rank 0's call has returned; then rank 1
    alone asks to stop, once, before its third call."""
    import torch.distributed as tdist

    from ddpm.train.distributed import Dist, StopVote

    tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    vote = StopVote(Dist(rank, 2, rank), torch.device("cpu"))
    if rank == 0:
        vote(False)
        cast.set()  # a blocking vote never gets here: rank 1 has not voted yet
    else:
        assert cast.wait(60), "rank 0's first vote waited for rank 1"
        vote(False)
    for call in range(1, 10):
        if vote(rank == 1 and call == 2):
            vote.settle()
            results.put((rank, call))
            break
    tdist.destroy_process_group()


def test_a_stop_vote_waits_for_no_peer_and_stops_every_rank_at_one_call():
    ctx = torch.multiprocessing.get_context("spawn")
    cast, results = ctx.Event(), ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_vote_rank, args=(rank, port, cast, results), daemon=True) for rank in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    codes = [p.exitcode for p in procs]
    for p in procs:
        p.kill()
    assert codes == [0, 0]
    # asked before call 2 by rank 1 alone: both stop at call 3 (the vote read one call later)
    assert sorted(results.get(timeout=5) for _ in procs) == [(0, 3), (1, 3)]


def test_ctrl_c_reaching_one_rank_stops_every_rank_at_one_step_and_resume_is_exact(one):
    """The stop is agreed without a host sync per step (StopVote): a request that only rank 1
    hears still stops both ranks at the same step, with rank 0's checkpoint there, and the run
    resumed from it trains as the uninterrupted reference."""
    config = _cfg(one, "ctrl_c", iterations=STEPS, freq_checkpoint=1000)
    job = subprocess.Popen([sys.executable, "-m", "ddpm", "train", "--config", str(config), "--nproc", "2"],
                           cwd=one, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    try:
        metrics = one / "exp" / "ctrl_c" / "metrics.jsonl"
        deadline = time.monotonic() + 120
        while (not metrics.exists() or len(metrics.read_text().splitlines()) < 3) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(_rank_pid(job.pid, 1), signal.SIGINT)
        out, err = job.communicate(timeout=120)
    finally:
        _end(job)
    assert job.returncode == 130 and "failed" not in err, err[-2000:]  # as Ctrl-C in one process
    log = (one / "exp" / "ctrl_c" / "train.log").read_text()
    stopped = [int(n) for n in re.findall(r"stopped at step (\d+) on request", log)]
    saved = [c.path for c in list_checkpoints(one / "exp" / "ctrl_c" / "checkpoints")]
    assert stopped and len(saved) == 1 and f"{stopped[0]:08d}" in saved[0].name, (out, err, saved)
    assert 3 <= stopped[0] < STEPS
    resumed = _cli(config, "--nproc", "2")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"from step {stopped[0]}" in resumed.stdout
    assert _losses(one, "ctrl_c") == pytest.approx(_losses(one, "one"), rel=1e-5)


def test_a_batch_that_does_not_split_is_one_line(one):
    config = _cfg(one, "uneven")
    cfg = json.loads(config.read_text())
    cfg["dataset"]["batch_size"] = 3
    config.write_text(json.dumps(cfg))
    done = _cli(config, "--nproc", "2")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "dataset.batch_size: 3 cannot be split evenly across 2 processes" in done.stderr
    assert not (one / "exp" / "uneven" / "checkpoints").exists()


def test_finetune_runs_on_two_processes(tmp_path):
    from finetune_helpers import ft_dict, write_json, write_labelled

    data = write_labelled(tmp_path / "labelled", n=5)
    unet = {"dim": 8, "channel_mults": [1, 2], "res_blocks": 1, "num_head_channels": 8}
    config = write_json(tmp_path / "ft.json", ft_dict(data, tmp_path / "exp", None, is_3d=True,
                                                      dataset={"image_size": 16},
                                                      model={"unet": unet, "precision": "fp32"}))
    done = subprocess.run([sys.executable, "-m", "ddpm", "finetune", "--config", str(config), "--nproc", "2"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("done: 6 steps") == 1
    records = [json.loads(line) for line in (tmp_path / "exp" / "ft" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [3, 6] and all("val_dice" in r for r in records)


def test_sampling_on_two_processes_writes_the_files_of_one(one):
    run = one / "exp" / "one"
    flags = ["--num", "5", "--batch-size", "2", "--sampler", "ddim", "--steps", "3", "--seed", "7"]

    def sample(out: str, *extra: str) -> list:
        done = subprocess.run([sys.executable, "-m", "ddpm", "sample", "--run", str(run), "--out", str(one / out),
                               "--precision", "fp32", *flags, *extra], cwd=one, env=_env(), capture_output=True,
                              text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.count("wrote 5 images") == 1
        manifest = json.loads((one / out / "samples.json").read_text())
        return [Path(s["preview_path"]).name for s in manifest["samples"]]

    assert sample("s1") == sample("s2", "--nproc", "2") == [f"sample-{i:04d}.png" for i in range(5)]
    for i in range(5):  # batch k draws from its own generator, so who drew it does not matter
        a = np.asarray(Image.open(one / "s1" / f"sample-{i:04d}.png"))
        b = np.asarray(Image.open(one / "s2" / f"sample-{i:04d}.png"))
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1, i

