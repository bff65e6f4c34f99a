"""The whole engine on a CUDA GPU: the seed's 3D config trained through `run_training` in fp32,
bf16 and fp16, with and without activation checkpointing; prints samples/s, peak GPU memory and
sampling time, so the README's memory advice is measured with our code, not guessed.

    python bench/gpu_train.py                 # every case, each in its own process
    python bench/gpu_train.py --steps 20 --cases 64-bf16,64-bf16-ckpt

A case: `<side>-<precision>[-ckpt][-b<batch>][-h<channels per head>]`, e.g. 64-fp32, 32-bf16,
64-bf16-ckpt-b4, 64-fp32-h32 (the seed's num_head_channels is 4).
Data: synthetic phantoms written by scripts/make_example_data.py into a temp folder.
A case whose precision this GPU cannot run natively (bf16 before compute capability 8.0) is
skipped with the reason (ddpm.precision).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CASES = ["32-fp32", "32-bf16", "64-fp32", "64-fp32-h32", "64-bf16", "64-fp16", "64-fp32-ckpt",
                 "64-bf16-ckpt", "64-bf16-ckpt-b4", "64-bf16-b8", "64-bf16-ckpt-b8"]


def parse_case(case: str) -> dict:
    parts = case.split("-")
    out = {"side": int(parts[0]), "precision": parts[1], "ckpt": "ckpt" in parts[2:], "batch": 2, "heads": 4}
    for p in parts[2:]:
        if p.startswith("b"):
            out["batch"] = int(p[1:])
        if p.startswith("h"):
            out["heads"] = int(p[1:])
    return out


def seed_config(data: Path, runs: Path, side: int, precision: str, ckpt: bool, batch: int, steps: int,
                heads: int = 4) -> dict:
    cfg = json.loads((ROOT / "configs" / "config_3d.json").read_text())
    cfg["experiment_path"] = str(runs)
    cfg["dataset"].update(path=str(data), image_size=side, batch_size=batch, grad_accumulation=1,
                          num_workers=4)
    cfg["model"]["unet"]["attn_res"] = side // 4  # the lowest level, as the seed's 16 at 64^3
    cfg["model"]["unet"]["checkpointing"] = ckpt
    cfg["model"]["unet"]["num_head_channels"] = heads
    cfg["model"].update(precision=precision, iterations=steps, freq_metrics=steps, freq_checkpoint=steps,
                        metric_samples=2, metric_steps=20)
    return cfg


def run_case(case: str, steps: int, data: Path) -> dict:
    import torch

    from ddpm.config import load_config
    from ddpm.train.callbacks import TrainCallbacks
    from ddpm.train.trainer import Trainer

    spec = parse_case(case)
    stamps: list[float] = []

    class Collect(TrainCallbacks):
        # The trainer's own it/s is a running mean that still holds the slow first steps
        # (cuDNN autotuning, lazy CUDA init); time each step here instead.
        def on_progress(self, info):  # noqa: ANN001
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as runs:
        cfg = load_config(seed_config(data, Path(runs), spec["side"], spec["precision"], spec["ckpt"],
                                      spec["batch"], steps, spec["heads"]))
        trainer = Trainer(cfg, Path(runs) / case, Collect())
        trainer.progress_interval_s = 0.0  # a rate per step
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        result = trainer.run(resume=False)
        wall = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated() / 2**30
        from ddpm.sample import sample_run

        t1 = time.perf_counter()
        files = sample_run(Path(runs) / case, num=2, sampler="dpmpp2m", steps=20, seed=0,
                           out_dir=Path(runs) / "samples")
        sample_s = time.perf_counter() - t1
        losses = [json.loads(line) for line in (Path(runs) / case / "metrics.jsonl").read_text().splitlines()]
    steps_s = [b - a for a, b in zip(stamps, stamps[1:])][len(stamps) // 3:]
    return {"case": case, "status": result.status, "samples_s": spec["batch"] / statistics.median(steps_s),
            "peak_gib": peak, "train_wall_s": wall, "sample2_dpmpp20_s": sample_s, "files": len(files),
            "final_loss": losses[-1].get("train_loss", losses[-1].get("loss")),
            "params_m": sum(p.numel() for p in trainer.model.unet.parameters()) / 1e6,
            "gpu": torch.cuda.get_device_name(0)}


def seed_snippet() -> str:
    """The seed note's Testing section, run exactly as written but for the import path."""
    import torch

    from ddpm import DDPM

    ddpm = DDPM(image_size=32, channels=1, device="cuda", is_3d=True)
    x = torch.randn(2, 1, 32, 32, 32).cuda()
    t = ddpm.sample_timesteps(2)
    loss = ddpm.p_losses(x, t)
    out = ddpm.sample(2, sampler="dpmpp2m", steps=10)
    assert torch.isfinite(loss) and out.shape == (2, 1, 32, 32, 32) and out.abs().max() <= 1
    return f"seed snippet on CUDA: loss {loss.item():.4f}, sample {tuple(out.shape)} in [-1, 1]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(DEFAULT_CASES))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_case(args.one, args.steps, args.data)))
        return
    sys.path.insert(0, str(ROOT))
    from ddpm.precision import precision_problem

    print(seed_snippet(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_example_data.py"), tmp,
                        "--n3d", "8", "--n2d", "0", "--size", "64"], check=True, stdout=subprocess.DEVNULL)
        data = Path(tmp) / "phantoms3d"
        rows = []
        for case in args.cases.split(","):
            problem = precision_problem(parse_case(case)["precision"], "cuda")
            if problem:  # e.g. bf16 on a pre-Ampere GPU: it would time the emulation
                rows.append({"case": case, "status": f"skipped: {problem}"})
                print(json.dumps(rows[-1]), flush=True)
                continue
            proc = subprocess.run([sys.executable, __file__, "--one", case, "--steps", str(args.steps),
                                   "--data", str(data)], capture_output=True, text=True, cwd=ROOT)
            if proc.returncode:
                rows.append({"case": case, "status": "error: " + proc.stderr.strip().splitlines()[-1][:120]})
            else:
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'case':18} {'samples/s':>10} {'peak GiB':>9} {'2 samples dpm++20 s':>20} {'loss':>8}  status")
    for r in rows:
        if "samples_s" in r:
            print(f"{r['case']:18} {r['samples_s']:10.2f} {r['peak_gib']:9.2f} {r['sample2_dpmpp20_s']:20.2f} "
                  f"{r['final_loss']:8.4f}  {r['status']}")
        else:
            print(f"{r['case']:18} {'':>10} {'':>9} {'':>20} {'':>8}  {r['status']}")


if __name__ == "__main__":
    main()
