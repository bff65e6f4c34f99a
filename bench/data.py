"""Data loading throughput: our preprocessing (cold, cached) vs MONAI's pipeline, and data wait.

Run with the bench env (MONAI lives there), importing our package from the work tree:

    bash bench/setup_bench_env.sh
    PYTHONPATH=. .bench-venv/bin/python bench/data.py            # 16 volumes 160x192x160 int16

It writes a folder of NIfTI volumes (int16, LPS, 1x1x1.2 mm: every file needs reorientation and
an anisotropic resize), then measures volumes/s for
  * ours, cold: a new dataset (header check + content hashing) and one pass that preprocesses
    every file and writes the cache;
  * ours, cached: a new dataset on the same folder (as the next run) and passes over it;
  * ours, no cache: preprocessing every time (``cache=False``);
  * MONAI: LoadImage + Orientation(RAS) + Resize + ScaleIntensity, uncached, in the same run;
    and MONAI's PersistentDataset (its on-disk cache) cold and cached, for reference;
and the share of time a training loop waits for data, with a DataLoader (num_workers=2, batch 2,
64^3) feeding (a) a real CPU training step of a small 3D DDPM and (b) fixed step times standing
in for a GPU step (the CPU sleeps, as it does while a GPU computes).

Targets: cached loading >= 10x MONAI's uncached pipeline; data wait < 5% of step time.
"""
from __future__ import annotations

import argparse
import os
import platform
import queue
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from ddpm.data import Volume3DDiffusionDataset


def make_volumes(root: Path, n: int, shape: tuple[int, int, int], seed: int = 0) -> list[Path]:
    """Head-like phantoms: an ellipsoid with inner structure and noise, stored int16 in LPS."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = root / f".made_{n}_{'x'.join(map(str, shape))}_{seed}"
    files = [root / f"case_{i:03d}.nii.gz" for i in range(n)]
    if stamp.exists() and all(f.exists() for f in files):
        return files
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, s, dtype=np.float32) for s in shape], indexing="ij")
    affine = np.diag([-1.0, -1.0, 1.2, 1.0])  # LPS, anisotropic: the loader must reorient + resize
    for f in files:
        radii = rng.uniform(0.6, 0.9, 3)
        r = np.sqrt(sum((g / a) ** 2 for g, a in zip(grids, radii)))
        vol = np.where(r < 1.0, 800.0, -1000.0) + np.where(r < 0.5, 300.0, 0.0)
        vol += rng.normal(0, 25, shape)
        nib.save(nib.Nifti1Image(vol.astype(np.int16), affine), str(f))
    stamp.touch()
    return files


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def time_ours(root: Path, size: int, cache_dir: Path, passes: int) -> dict[str, float]:
    shutil.rmtree(cache_dir, ignore_errors=True)
    out = {}
    t0 = time.perf_counter()
    ds = Volume3DDiffusionDataset(root, size, cache_dir=cache_dir)
    init = time.perf_counter() - t0
    for i in range(len(ds)):
        ds[i]
    out["cold"] = rate(len(ds), time.perf_counter() - t0)
    out["cold_init_s"] = init
    runs = []
    for _ in range(passes):
        t0 = time.perf_counter()
        ds = Volume3DDiffusionDataset(root, size, cache_dir=cache_dir)  # the next run
        for i in range(len(ds)):
            ds[i]
        runs.append(time.perf_counter() - t0)
    out["cached"] = rate(len(ds), statistics.median(runs))
    t0 = time.perf_counter()
    ds2 = Volume3DDiffusionDataset(root, size, cache_dir=cache_dir)
    out["cached_init_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(passes):
        for i in range(len(ds2)):
            ds2[i]
    out["cached_items"] = rate(len(ds2) * passes, time.perf_counter() - t0)
    nocache = Volume3DDiffusionDataset(root, size, cache=False)
    t0 = time.perf_counter()
    for i in range(len(nocache)):
        nocache[i]
    out["nocache"] = rate(len(nocache), time.perf_counter() - t0)
    return out


def time_monai(files: list[Path], size: int, cache_dir: Path) -> dict[str, float]:
    try:
        import monai
        from monai.data import PersistentDataset
        from monai.transforms import (Compose, LoadImage, LoadImaged, Orientation, Orientationd, Resize,
                                      Resized, ScaleIntensity, ScaleIntensityd)
    except ImportError:
        return {}
    out: dict[str, float] = {"version": monai.__version__}
    pipe = Compose([LoadImage(image_only=True, ensure_channel_first=True), Orientation(axcodes="RAS"),
                    Resize((size,) * 3), ScaleIntensity()])
    t0 = time.perf_counter()
    for f in files:
        x = pipe(str(f))
    out["uncached"] = rate(len(files), time.perf_counter() - t0)
    assert tuple(x.shape) == (1, size, size, size)
    keys = "img"
    dpipe = Compose([LoadImaged(keys, image_only=True, ensure_channel_first=True),
                     Orientationd(keys, axcodes="RAS"), Resized(keys, (size,) * 3), ScaleIntensityd(keys)])
    shutil.rmtree(cache_dir, ignore_errors=True)
    data = [{"img": str(f)} for f in files]
    for label in ("persistent_cold", "persistent_cached"):
        t0 = time.perf_counter()
        ds = PersistentDataset(data, dpipe, cache_dir=cache_dir)
        for i in range(len(ds)):
            ds[i]
        out[label] = rate(len(files), time.perf_counter() - t0)
    return out


class _Receiver:
    """Receive batches in a background thread, as DataLoader's pin_memory thread does on CUDA:
    the worker-to-main transfer (fd passing, unpickling) then overlaps the step."""

    def __init__(self, it, depth: int = 2):
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(it,), daemon=True)
        self.thread.start()

    def _run(self, it) -> None:
        for batch in it:
            while not self.stop.is_set():
                try:
                    self.q.put(batch, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if self.stop.is_set():
                return

    def __next__(self):
        return self.q.get()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def data_wait(root: Path, size: int, cache_dir: Path, steps: int, step_fn, warmup: int = 2,
              receive_thread: bool = False) -> dict[str, float]:
    """Time blocked in next(loader) per step, for the trainer's DataLoader (its infinite seeded
    order and per-item seeding, num_workers=2, batch 2) feeding ``step_fn``: mean and median wall
    ms, the main process's CPU ms per batch (receiving it; what is left when no other job
    competes for the cores) and the share of wall time spent waiting."""
    from ddpm.train.data_order import InfiniteOrder, SeededItems

    ds = Volume3DDiffusionDataset(root, size, cache_dir=cache_dir, flip=True)
    loader = torch.utils.data.DataLoader(SeededItems(ds, 0), batch_size=2, sampler=InfiniteOrder(len(ds), 0),
                                         num_workers=2, persistent_workers=True)
    it = _Receiver(iter(loader)) if receive_thread else iter(loader)
    waits, cpu, work = [], 0.0, 0.0
    for step in range(warmup + steps):
        c0, t0 = time.process_time(), time.perf_counter()
        batch = next(it)
        c1, t1 = time.process_time(), time.perf_counter()
        step_fn(batch)
        t2 = time.perf_counter()
        if step >= warmup:
            waits.append(t1 - t0)
            cpu += c1 - c0
            work += t2 - t1
    if receive_thread:
        it.close()
    del it, loader  # ends the worker processes
    wait = sum(waits)
    return {"mean_ms": 1000 * wait / steps, "median_ms": 1000 * statistics.median(waits),
            "cpu_ms": 1000 * cpu / steps, "share": wait / (wait + work)}


def real_step_fn(size: int):
    from ddpm import DDPM

    torch.manual_seed(0)
    model = DDPM(image_size=size, channels=1, device="cpu", is_3d=True, dim=8, channel_mults=(1, 2),
                 res_blocks=1, attn_res=[])
    opt = torch.optim.AdamW(model.parameters(), 1e-4)

    def step(batch: torch.Tensor) -> None:
        loss = model.p_losses(batch, model.sample_timesteps(batch.shape[0]))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def _loop_row(name: str, r: dict[str, float]) -> str:
    return (f"| {name} | {r['mean_ms']:.2f} | {r['median_ms']:.2f} | {r['cpu_ms']:.2f} "
            f"| {100 * r['share']:.2f}% |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=16, help="volumes")
    ap.add_argument("--shape", type=int, nargs=3, default=(160, 192, 160))
    ap.add_argument("--size", type=int, default=64, help="image_size")
    ap.add_argument("--passes", type=int, default=5, help="cached passes (median)")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ddpm_bench_data")
    ap.add_argument("--real-steps", type=int, default=4, help="real CPU training steps (0 = skip)")
    ap.add_argument("--sleep-steps", type=int, default=30, help="steps per stand-in GPU step time")
    args = ap.parse_args()
    shape = tuple(args.shape)
    root = args.workdir / "volumes"
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    files = make_volumes(root, args.n, shape)
    print(f"data: {args.n} x {'x'.join(map(str, shape))} int16 .nii.gz in {root} "
          f"({sum(f.stat().st_size for f in files) / 1e6:.0f} MB, ready in {time.perf_counter() - t0:.1f} s)",
          flush=True)
    ours = time_ours(root, args.size, args.workdir / "cache_ours", args.passes)
    monai = time_monai(files, args.size, args.workdir / "cache_monai")

    rows = [("ours, cold (new dataset + preprocess + write cache)", ours["cold"]),
            ("ours, cached (new dataset = next run, then one pass)", ours["cached"]),
            ("ours, cached items (__getitem__ only)", ours["cached_items"]),
            ("ours, cache=False", ours["nocache"])]
    if monai:
        rows += [(f"MONAI {monai['version']} LoadImage+Orientation+Resize+ScaleIntensity", monai["uncached"]),
                 ("MONAI PersistentDataset, cold", monai["persistent_cold"]),
                 ("MONAI PersistentDataset, cached", monai["persistent_cached"])]
    print(f"\n| {args.size}^3 from {'x'.join(map(str, shape))} | volumes/s |\n| --- | ---: |")
    for name, r in rows:
        print(f"| {name} | {r:,.1f} |")
    print(f"\ndataset construction: {ours['cold_init_s'] * 1000:.0f} ms first run (hashing), "
          f"{ours['cached_init_s'] * 1000:.0f} ms later runs (hash memo)")
    if monai:
        ratio = ours["cached"] / monai["uncached"]
        print(f"cached vs MONAI uncached: {ratio:.0f}x (target >= 10x: {'met' if ratio >= 10 else 'NOT met'})")

    cache = args.workdir / "cache_ours"
    print(f"\n| training loop (DataLoader workers=2, batch 2, {args.size}^3, cached) | wait ms mean | median "
          "| main CPU ms/batch | data wait share |\n| --- | ---: | ---: | ---: | ---: |")
    loops = []
    if args.real_steps:
        loops.append(("real CPU step, 3D DDPM dim 8 [1,2]",
                      data_wait(root, args.size, cache, args.real_steps, real_step_fn(args.size), warmup=1)))
        print(_loop_row(*loops[-1]), flush=True)
    for threaded in (False, True):
        for step_ms in (0, 20, 50, 100):
            name = "no step (loader alone)" if step_ms == 0 else f"{step_ms} ms step (GPU stand-in)"
            name += ", receiving thread" if threaded else ""
            loops.append((name, data_wait(root, args.size, cache, args.sleep_steps,
                                          lambda _b, s=step_ms: time.sleep(s / 1000), receive_thread=threaded)))
            print(_loop_row(*loops[-1]), flush=True)
    for threaded in (False, True):
        worst = max(r["share"] for n, r in loops
                    if not n.startswith("no step") and ("thread" in n) == threaded)
        print(f"worst data wait share with a step, {'with' if threaded else 'without'} a receiving thread: "
              f"{100 * worst:.2f}% "
              f"(target < 5%: {'met' if worst < 0.05 else 'NOT met'})")
    print(f"\n{date.today().isoformat()} on {platform.node() or 'this machine'}: {platform.machine()}, "
          f"{os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
          f"python {sys.version.split()[0]}; load average at start {load0:.1f}, at end {os.getloadavg()[0]:.1f} "
          "(other jobs share these cores)")


if __name__ == "__main__":
    main()
