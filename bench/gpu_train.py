"""The whole engine on a CUDA GPU: samples/s, peak memory and sampling time in one table.

The seed's 3D config (EMA, self-conditioning) trained through the trainer, so the README's
advice is measured with our code, not guessed.

    python bench/gpu_train.py                      # the memory set: precisions, checkpointing
    python bench/gpu_train.py --cases compile      # 64^3 bf16 batch 2 and 8: eager, torch.compile
                                                   #   default and reduce-overhead (sized for ~6 min)
    python bench/gpu_train.py --steps 20 --cases 64-bf16,64-bf16-ckpt
    python bench/gpu_train.py --smoke              # on the CPU in seconds: the code paths run

A case: `<side>-<precision>[-ckpt][-b<batch>][-h<channels per head>][-compile|-reduce]`, e.g.
64-fp32, 64-bf16-ckpt-b4, 64-fp32-h32 (the seed's num_head_channels is 4), 64-bf16-b8-reduce.
`compile` / `reduce` wrap the step's loss module (forward and backward) in torch.compile with
mode default / reduce-overhead (CUDA graphs; the step makes no host sync, so it can be captured);
the optimizer, the EMA and the counters stay eager. Samples/s is timed between the trainer's own
reads (progress reports a quarter second apart) after the first quarter of the steps, so compile
and CUDA-graph recording are left out; their cost is the "first step s" column.
Data: synthetic phantoms written by scripts/make_example_data.py into a temp folder.
A case whose precision this GPU cannot run natively (bf16 before compute capability 8.0) is
skipped with the reason (ddpm.precision); a case that runs past --case-timeout is cut off and
reported. With --smoke: a tiny U-Net at 16^3 for 3 steps on the CPU on the ops CUDA runs (no
native CPU kernels, SDPA attention), compile cases traced by dynamo with the eager backend
(Inductor and CUDA graphs need the GPU): it checks that the code runs and that the step is one
graph (the "breaks" column); it exits 1 if a case failed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
CASE_SETS = {
    "memory": ["32-fp32", "32-bf16", "64-fp32", "64-fp32-h32", "64-bf16", "64-fp16", "64-fp32-ckpt",
               "64-bf16-ckpt", "64-bf16-ckpt-b4", "64-bf16-b8", "64-bf16-ckpt-b8"],
    # issue 15: the sync-free step under torch.compile; each batch's eager case first (the
    # baseline), default before reduce-overhead (the second reuses Inductor's kernel caches)
    "compile": ["64-bf16-b2", "64-bf16-b2-compile", "64-bf16-b2-reduce",
                "64-bf16-b8", "64-bf16-b8-compile", "64-bf16-b8-reduce"],
}
SMOKE_CASES = ["16-bf16-b2", "16-bf16-b2-compile", "16-bf16-b2-reduce"]
SMOKE_ENV = {"DDPM_NATIVE": "0"}  # CUDA never uses the native CPU kernels (opaque to dynamo too)
COMPILE_MODES = {"compile": "default", "reduce": "reduce-overhead"}


def parse_case(case: str) -> dict:
    parts = case.split("-")
    out = {"side": int(parts[0]), "precision": parts[1], "ckpt": "ckpt" in parts[2:], "batch": 2, "heads": 4,
           "compile": None}
    for p in parts[2:]:
        if p.startswith("b"):
            out["batch"] = int(p[1:])
        if p.startswith("h"):
            out["heads"] = int(p[1:])
        if p in COMPILE_MODES:
            out["compile"] = COMPILE_MODES[p]
    return out


def seed_config(data: Path, runs: Path, side: int, precision: str, ckpt: bool, batch: int, steps: int,
                heads: int = 4, sampling: bool = True, smoke: bool = False) -> dict:
    cfg = json.loads((ROOT / "configs" / "config_3d.json").read_text())
    cfg["experiment_path"] = str(runs)
    cfg["dataset"].update(path=str(data), image_size=side, batch_size=batch, grad_accumulation=1,
                          num_workers=0 if smoke else 4)
    unet = cfg["model"]["unet"]
    unet.update(attn_res=side // 4, checkpointing=ckpt, num_head_channels=heads)  # attention at the lowest level
    if smoke:
        unet.update(dim=8, channel_mults=[1, 2], res_blocks=1, attn_res=side // 2, num_head_channels=8)
    cfg["model"].update(precision=precision, iterations=steps, freq_metrics=steps, freq_checkpoint=steps,
                        metric_samples=2 if sampling else 0, metric_steps=20 if sampling else 4)
    return cfg


def compiled(module: Any, mode: str, device: Any) -> Callable:
    """``module`` under torch.compile (Inductor with ``mode`` on CUDA; dynamo's eager backend on
    the CPU, which checks the capture without timing anything)."""
    import torch

    if device.type != "cuda":
        return torch.compile(module, backend="eager")
    fn = torch.compile(module, mode=mode)
    if mode != "reduce-overhead":
        return fn

    def step_call(*args: Any, **kwargs: Any) -> Any:
        # a new step begins: the previous step's graph outputs (its loss) may be overwritten
        torch.compiler.cudagraph_mark_step_begin()
        return fn(*args, **kwargs)

    step_call.no_sync = getattr(module, "no_sync", None)  # DDP's, for gradient accumulation
    return step_call


def run_case(case: str, steps: int, data: Path, sampling: bool, smoke: bool) -> dict:
    import torch
    import torch._dynamo.utils

    from ddpm.config import load_config
    from ddpm.train.callbacks import TrainCallbacks
    from ddpm.train.trainer import Trainer

    spec = parse_case(case)
    stamps: list[tuple[int, float]] = []
    cuda = torch.cuda.is_available()
    if smoke:  # the attention CUDA runs (SDPA), not the CPU's chunked bf16 one
        from ddpm.nn.attention import Attention

        Attention.CPU_CHUNKED = False

    class Collect(TrainCallbacks):
        def on_start(self, step, total, resumed_from):  # noqa: ANN001
            stamps.append((step, time.perf_counter()))

        def on_progress(self, info):  # noqa: ANN001
            stamps.append((info.step, time.perf_counter()))  # just after a read: the device is idle

    class Bench(Trainer):
        progress_interval_s = 0.25  # a read (a host sync) at most 4 times a second, as in a real run

        def _setup(self, resume: bool) -> Any:
            found = super()._setup(resume)
            if spec["compile"]:
                self.loss_module = compiled(self.loss_module, spec["compile"], self.device)
            return found

    with tempfile.TemporaryDirectory() as runs:
        cfg = load_config(seed_config(data, Path(runs), spec["side"], spec["precision"], spec["ckpt"],
                                      spec["batch"], steps, spec["heads"], sampling, smoke))
        trainer = Bench(cfg, Path(runs) / case, Collect())
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        result = trainer.run(resume=False)
        wall = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
        sample_s = None
        if sampling:
            from ddpm.sample import sample_run

            t1 = time.perf_counter()
            sample_run(Path(runs) / case, num=2, sampler="dpmpp2m", steps=20, seed=0, out_dir=Path(runs) / "samples")
            sample_s = time.perf_counter() - t1
        losses = [json.loads(line) for line in (Path(runs) / case / "metrics.jsonl").read_text().splitlines()]
    (s0, t_start), (s1, t_first) = stamps[0], stamps[1]
    after = [s for s in stamps[1:-1] if s[0] >= steps // 4] or stamps[1:2]
    (sa, ta), (sb, tb) = after[0], stamps[-1]
    return {"case": case, "status": result.status, "samples_s": spec["batch"] * (sb - sa) / max(tb - ta, 1e-9),
            "first_step_s": (t_first - t_start) / max(1, s1 - s0), "peak_gib": peak, "train_wall_s": wall,
            "sample2_dpmpp20_s": sample_s, "final_loss": losses[-1].get("train_loss"),
            "graph_breaks": sum(torch._dynamo.utils.counters["graph_break"].values()),
            "params_m": sum(p.numel() for p in trainer.model.unet.parameters()) / 1e6,
            "device": torch.cuda.get_device_name(0) if cuda else "cpu"}


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


def print_table(rows: list[dict]) -> None:
    def num(r: dict, key: str, fmt: str, width: int) -> str:
        return format(r[key], fmt).rjust(width) if r.get(key) is not None else "".rjust(width)

    eager = {parse_case(r["case"])["batch"]: r["samples_s"] for r in rows
             if "samples_s" in r and not parse_case(r["case"])["compile"]}
    print(f"\n{'case':20} {'samples/s':>10} {'x eager':>8} {'first step s':>13} {'peak GiB':>9} "
          f"{'breaks':>7} {'2 samples dpm++20 s':>20} {'loss':>8}  status")
    for r in rows:
        base = eager.get(parse_case(r["case"])["batch"])
        if "samples_s" in r and base:
            r["x_eager"] = r["samples_s"] / base
        print(f"{r['case']:20} {num(r, 'samples_s', '.2f', 10)} {num(r, 'x_eager', '.2f', 8)} "
              f"{num(r, 'first_step_s', '.1f', 13)} {num(r, 'peak_gib', '.2f', 9)} {num(r, 'graph_breaks', 'd', 7)} "
              f"{num(r, 'sample2_dpmpp20_s', '.2f', 20)} {num(r, 'final_loss', '.4f', 8)}  {r['status']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="memory", help=f"a set ({', '.join(CASE_SETS)}) or cases, comma-separated")
    ap.add_argument("--steps", type=int, help="steps per case (default 30; 40 for the compile set)")
    ap.add_argument("--smoke", action="store_true", help="tiny cases on the CPU: check that the code runs")
    ap.add_argument("--case-timeout", type=float, default=150.0, help="seconds one case may take (default 150)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--no-sampling", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    steps = args.steps or (3 if args.smoke else 40 if args.cases == "compile" else 30)
    if args.one:
        print(json.dumps(run_case(args.one, steps, args.data, not args.no_sampling, args.smoke)))
        return
    sys.path.insert(0, str(ROOT))
    from ddpm.precision import precision_problem

    cases = SMOKE_CASES if args.smoke else CASE_SETS.get(args.cases, args.cases.split(","))
    sampling = args.cases == "memory" and not args.smoke  # the compile set times training only
    import torch

    print(f"torch {torch.__version__}", flush=True)
    if not args.smoke:
        print(seed_snippet(), flush=True)
    side = 16 if args.smoke else 64
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_example_data.py"), tmp,
                        "--n3d", "4" if args.smoke else "8", "--n2d", "0", "--size", str(side)],
                       check=True, stdout=subprocess.DEVNULL)
        rows = []
        for case in cases:
            problem = None if args.smoke else precision_problem(parse_case(case)["precision"], "cuda")
            if problem:  # e.g. bf16 on a pre-Ampere GPU: it would time the emulation
                rows.append({"case": case, "status": f"skipped: {problem}"})
                print(json.dumps(rows[-1]), flush=True)
                continue
            cmd = [sys.executable, __file__, "--one", case, "--steps", str(steps), "--data",
                   str(Path(tmp) / "phantoms3d")]
            cmd += (["--no-sampling"] if not sampling else []) + (["--smoke"] if args.smoke else [])
            env = {**os.environ, **(SMOKE_ENV if args.smoke else {})}
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env,
                                      timeout=args.case_timeout)
            except subprocess.TimeoutExpired:
                rows.append({"case": case, "status": f"error: cut off after {args.case_timeout:g} s (--case-timeout)"})
                print(json.dumps(rows[-1]), flush=True)
                continue
            if proc.returncode:
                rows.append({"case": case, "status": "error: " + proc.stderr.strip().splitlines()[-1][:120]})
            else:
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    print_table(rows)
    if args.smoke and any(r["status"].startswith("error") for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
