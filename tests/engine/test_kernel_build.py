"""A kernel build can never hold up training: a killed build leaves nothing that blocks the next
run, a build has a deadline, and every checkout shares one cache entry."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ddpm.nn.kernels import loader

ROOT = Path(__file__).resolve().parents[2]

_TRAIN = """
import logging, time
t0 = time.monotonic()
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
import torch
from ddpm import DDPM
from ddpm.nn import kernels
m = DDPM(image_size=16, channels=1, device="cpu", is_3d=False)
x = torch.randn(2, 1, 16, 16).contiguous(memory_format=torch.channels_last)
with torch.autocast("cpu", dtype=torch.bfloat16):
    loss = m.p_losses(x, m.sample_timesteps(2))
loss.backward()
print("loss", float(loss))
print("status", kernels.status())
print("seconds", time.monotonic() - t0)
"""


def _env(tmp_path: Path, **extra: str) -> dict:
    return {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext"), "PYTHONPATH": str(ROOT), **extra}


def _entry(tmp_path: Path) -> Path:
    return tmp_path / "ext" / "ddpm" / loader.build_name()


def test_a_build_killed_half_way_does_not_hold_up_the_next_run(tmp_path):
    entry = _entry(tmp_path)
    # a first run starts the build and is SIGKILLed (with its build process) while compiling
    first = subprocess.Popen([sys.executable, "-m", "ddpm", "kernels"], env=_env(tmp_path),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not (entry / "work" / "lock").exists():  # torch's lock file: the compiler is running
            assert first.poll() is None and time.monotonic() < deadline, "the build never started"
            time.sleep(0.05)
        time.sleep(1.0)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    # what used to make every later job wait forever: torch's lock file left, no library
    assert (entry / "work" / "lock").exists() and not (entry / loader.LIBRARY).exists()

    # the next run trains within seconds: it waits for a new build at most its deadline
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", _TRAIN], capture_output=True, text=True, timeout=120,
                       env=_env(tmp_path, DDPM_KERNEL_BUILD_TIMEOUT="2"))
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr[-2000:]
    assert "loss nan" not in r.stdout and "loss " in r.stdout
    seconds_in_process = float(r.stdout.split("seconds ")[1])
    assert seconds_in_process < 30, (seconds_in_process, took)  # imports + the 2 s deadline + one step
    if "native CPU kernels loaded" not in r.stdout:  # a fast machine may finish the build in 2 s
        assert "not in use: the build did not finish within 2 s" in r.stdout
        assert "native CPU kernels not ready" in r.stderr  # one line in the log says so

    # the build it started goes on in the background; the stale lock did not stop it
    r = subprocess.run([sys.executable, "-m", "ddpm", "kernels"], capture_output=True, text=True, timeout=300,
                       env=_env(tmp_path))
    assert r.returncode == 0 and r.stdout.startswith("native CPU kernels loaded"), r.stdout + r.stderr


def test_the_cache_entry_depends_on_the_sources_contents_not_their_paths(tmp_path, monkeypatch):
    other_checkout = tmp_path / "elsewhere" / "csrc"
    other_checkout.mkdir(parents=True)
    for f in loader.CSRC.iterdir():
        (other_checkout / f.name).write_bytes(f.read_bytes())
    here = loader.build_name()
    monkeypatch.setattr(loader, "CSRC", other_checkout)
    assert loader.build_name() == here
    (other_checkout / "vec_math.h").write_text((other_checkout / "vec_math.h").read_text() + "\n// changed\n")
    assert loader.build_name() != here  # a header edit must rebuild, not load a stale library
