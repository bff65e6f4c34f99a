"""Speed and memory of our UNet beside MONAI's DiffusionModelUNet and lucidrains' Unet.

    .bench-venv/bin/python bench/unet.py                 # full CPU run (bench/setup_bench_env.sh first)
    .bench-venv/bin/python bench/unet.py --quick         # smoke run: tiny sizes, one timed step
    python bench/unet.py --device cuda --cases 3d64 --models ours,monai-flash --dtypes bf16

Each (case, model, dtype) runs in its own process, so one model's memory high-water mark or
allocator state never leaks into another's numbers. Per row: training samples/s (median of the
timed steps after warm-up; a step = forward, MSE loss, backward, AdamW step), forward ms
(inference, no grad), peak memory (CPU: the process's peak RSS, torch runtime included; CUDA:
peak allocated GPU memory), model GFLOP per training sample (forward + backward matmuls and
convolutions counted by FlopCounterMode; recomputation by checkpointing not counted) and the
share of the machine's matmul peak that the step reaches (peak measured in this run, per dtype).
Not a test: it asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = {  # name: (dims, side, batch)
    "2d64": (2, 64, 8),
    "3d32": (3, 32, 2),
    "3d64": (3, 64, 2),
}
QUICK_CASES = {"2d32q": (2, 32, 2), "3d16q": (3, 16, 1)}
DEFAULT_MODELS = ["ours", "monai", "monai-flash", "lucidrains"]


# ----------------------------------------------------------------------------- worker side

def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def measure_peak(dtype: str, device: str, seconds: float) -> float:
    """Best matmul rate (FLOP/s) in this dtype on this device: large square products, and on CPU
    also two convolutions (implicit GEMMs through oneDNN). On the AMD CPU here MKL's fp32
    matmul (torch.matmul) reaches about half of what oneDNN's GEMMs do, so the matmul alone
    would understate the peak and put convolution-heavy steps above "100%"."""
    import torch
    import torch.nn.functional as F

    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    n = 8192 if device == "cuda" else 4096
    dt = torch.bfloat16 if dtype == "bf16" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dt)
    b = torch.randn(n, n, device=device, dtype=dt)
    reps = 10 if device == "cuda" else 1
    kernels = [(lambda: a @ b, 2 * n**3)]
    if device == "cpu":
        c, hw = 1024, 64
        img = torch.randn(4, c, hw, hw, dtype=dt)
        w = torch.randn(c, c, 1, 1, dtype=dt)
        kernels.append((lambda: F.conv2d(img, w), 2 * 4 * hw * hw * c * c))
        for c3, s3 in ((128, 16), (64, 32)):
            vol = torch.randn(2, c3, s3, s3, s3, dtype=dt)
            k3 = torch.randn(c3, c3, 3, 3, 3, dtype=dt)
            kernels.append((lambda v=vol, k=k3: F.conv3d(v, k, padding=1), 2 * 2 * s3**3 * c3 * c3 * 27))
    best = 0.0
    for fn, flops in kernels:
        fn()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            _sync(device)
            best = max(best, flops * reps / (time.perf_counter() - t0))
    return best


def count_flops(name: str, dims: int, size: int, batch: int) -> float:
    """Model FLOPs of one training step (forward + backward) per sample, counted on the meta device."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from unet_peers import build

    with torch.device("meta"):
        model, call, _ = build(name.replace("-ckpt", ""), dims, size)
        x = torch.randn(batch, 1, *([size] * dims))
        t = torch.randint(0, 1000, (batch,))
    counter = FlopCounterMode(display=False)
    with counter:
        call(model, x, t).float().square().mean().backward()
    return counter.get_total_flops() / batch


def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(spec: dict) -> dict:
    import torch
    import torch.nn.functional as F

    from unet_peers import build

    device, dtype, name = spec["device"], spec["dtype"], spec["model"]
    dims, size, batch = spec["dims"], spec["size"], spec["batch"]
    torch.manual_seed(0)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    out = {k: spec[k] for k in ("case", "model", "dtype", "device")}
    try:
        out["flops_per_sample"] = count_flops(name.replace("-compile", ""), dims, size, batch)
    except Exception as e:  # noqa: BLE001 - a peer that cannot run on meta: count on one real sample
        out["flops_note"] = f"meta count failed ({type(e).__name__})"
        out["flops_per_sample"] = None

    flash_ok = not (device == "cuda" and dtype == "fp32")
    model, call, note = build(name, dims, size, flash_ok=flash_ok, channels_last=spec["channels_last"])
    model = model.to(device)
    if not spec["channels_last"] and name.startswith("ours") and name != "ours-contig":
        note = (note + "; " if note else "") + "contiguous layout"
    out["note"] = note
    if name.endswith("-compile"):
        model = torch.compile(model)
    out["params_m"] = sum(p.numel() for p in model.parameters()) / 1e6
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 1, *([size] * dims), device=device)
    noise = torch.randn_like(x)
    t = torch.randint(0, 1000, (batch,), device=device)
    amp = torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bf16")

    if out["flops_per_sample"] is None:
        from torch.utils.flop_counter import FlopCounterMode

        one = FlopCounterMode(display=False)
        with one, amp:
            F.mse_loss(call(model, x[:1], t[:1]).float(), noise[:1]).backward()
        opt.zero_grad(set_to_none=True)
        out["flops_per_sample"] = one.get_total_flops()

    def step() -> None:
        with amp:
            loss = F.mse_loss(call(model, x, t).float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model.train()
    for _ in range(spec["warmup"]):
        step()
    times: list[float] = []
    while len(times) < spec["steps"] and (len(times) < spec["min_steps"] or sum(times) < spec["budget_s"]):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    out["step_s"] = statistics.median(times)
    out["timed_steps"] = len(times)
    out["samples_per_s"] = batch / out["step_s"]

    model.eval()
    fwd: list[float] = []
    with torch.no_grad(), amp:
        for i in range(spec["fwd_reps"] + 1):
            _sync(device)
            t0 = time.perf_counter()
            call(model, x, t)
            _sync(device)
            if i:  # the first is a warm-up (new shapes without autograd)
                fwd.append(time.perf_counter() - t0)
    out["forward_ms"] = 1000 * statistics.median(fwd)
    if device == "cuda":
        out["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        out["peak_mb"] = rss_peak_mb()
    return out


# ----------------------------------------------------------------------------- driver side

PRELOAD: dict[str, str] = {}  # set by --allocator; the same for every row, ours and peers


def _repo_on_path() -> None:
    if str(HERE.parent) not in sys.path:  # the repo root, as the row processes get it
        sys.path.insert(0, str(HERE.parent))


def _allocator_env(name: str) -> dict[str, str]:
    """LD_PRELOAD for --allocator (glibc's malloc when "system"), found as the engine finds it."""
    if name == "system":
        return {}
    _repo_on_path()
    from ddpm.allocator import preload_tcmalloc  # torch-free; ddpm/__init__ imports lazily

    env: dict[str, str] = {}
    if preload_tcmalloc(env) is None:
        sys.exit("--allocator tcmalloc: libtcmalloc_minimal not found "
                 "(apt-get install -y libtcmalloc-minimal4)")
    return env


def _dtypes_worth_measuring(dtypes: list[str], device: str) -> list[str]:
    """The dtypes that run natively on ``device``: bf16 on a CPU without AVX512-BF16/AMX-BF16 is
    emulated (many times slower than fp32), so its rows would measure the emulation, not us."""
    _repo_on_path()
    from ddpm.precision import precision_problem  # the engine's own check (ddpm/precision.py)

    kept = []
    for d in dtypes:
        problem = precision_problem(d, device)
        if problem:
            print(f"# skipping {d} on {device}: {problem}", file=sys.stderr, flush=True)
        else:
            kept.append(d)
    return kept


def _sub(args: list[str], timeout: float) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", **PRELOAD)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), str(HERE.parent), env.get("PYTHONPATH")]))
    try:
        p = subprocess.run([sys.executable, str(HERE / "unet.py"), *args], capture_output=True,
                           text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    err = (p.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": err[:160]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--cases", default=None, help=f"comma list of {list(CASES)} (default: all)")
    ap.add_argument("--models", default=None, help="comma list of ours, ours-ckpt, monai, monai-flash, lucidrains")
    ap.add_argument("--dtypes", default="fp32,bf16",
                    help="comma list of fp32, bf16; one the device only emulates (bf16 on a CPU without "
                         "AVX512-BF16/AMX-BF16) is skipped with a note")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, 1 warm-up + 1 timed step")
    ap.add_argument("--channels-last", choices=["on", "off"], default="on",
                    help="layout of our UNet (on: its default, channels-last; peers run as published)")
    ap.add_argument("--allocator", choices=["system", "tcmalloc"], default="system",
                    help="memory allocator of every row's process (tcmalloc: LD_PRELOAD of "
                         "libtcmalloc_minimal, for ours and the peers alike)")
    ap.add_argument("--budget", type=float, default=None, help="seconds of timed steps per row")
    ap.add_argument("--json", default=None, help="also write the raw rows here")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--peak", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.worker:
        print("RESULT " + json.dumps(run_case(json.loads(a.worker))), flush=True)
        return
    if a.peak:
        dtype, device, secs = a.peak.split(",")
        print("RESULT " + json.dumps({"peak": measure_peak(dtype, device, float(secs))}), flush=True)
        return

    PRELOAD.update(_allocator_env(a.allocator))
    cuda = a.device == "cuda"
    cases = QUICK_CASES if a.quick else CASES
    if a.cases:
        cases = {k: {**CASES, **QUICK_CASES}[k] for k in a.cases.split(",")}
    dtypes = _dtypes_worth_measuring(a.dtypes.split(","), a.device)
    def peak(d: str) -> float:
        secs = 1 if a.quick or cuda else 3
        return _sub(["--peak", f"{d},{a.device},{secs}"], 300).get("peak", float("nan"))

    peaks = {d: peak(d) for d in dtypes}
    rows = []
    for case, (dims, size, batch) in cases.items():
        extra = ["ours-contig"] + (["ours-ckpt"] if size >= 64 and dims == 3 else [])
        models = a.models.split(",") if a.models else DEFAULT_MODELS + extra
        for model in models:
            for dtype in dtypes:
                if model == "lucidrains" and dims == 3:
                    rows.append({"case": case, "model": model, "dtype": dtype,
                                 "error": "no 3D model (its Unet is 2D only)"})
                    continue
                big = dims == 3 and size >= 64
                spec = dict(case=case, model=model, dtype=dtype, device=a.device, dims=dims, size=size,
                            batch=batch, channels_last=a.channels_last == "on",
                            warmup=1 if a.quick else (3 if cuda else 1),
                            steps=1 if a.quick else (20 if cuda else 10),
                            min_steps=1 if a.quick else (10 if cuda else (2 if big else 3)),
                            budget_s=a.budget if a.budget is not None else (2.0 if cuda else 8.0),
                            fwd_reps=1 if a.quick or (big and not cuda) else 5)
                t0 = time.time()
                r = _sub(["--worker", json.dumps(spec)], 600)
                r.update({k: spec[k] for k in ("case", "model", "dtype")})
                if "samples_per_s" in r and r.get("flops_per_sample"):
                    r["peak_share"] = r["flops_per_sample"] * r["samples_per_s"] / peaks[dtype]
                r["wall_s"] = time.time() - t0
                rows.append(r)
                if a.json:  # written after every row, so a run cut short still leaves its rows
                    Path(a.json).write_text(json.dumps({"peaks": peaks, "rows": rows}, indent=1))
                print(f"# {case} {model} {dtype}: "
                      + (f"{r['samples_per_s']:.3f} samples/s" if "samples_per_s" in r else r["error"])
                      + f" ({r['wall_s']:.0f} s)", file=sys.stderr, flush=True)
    # measured again at the end: on a shared machine the better of the two is nearer the truth
    peaks = {d: max(p, peak(d)) for d, p in peaks.items()}
    for r in rows:
        if "samples_per_s" in r and r.get("flops_per_sample"):
            r["peak_share"] = r["flops_per_sample"] * r["samples_per_s"] / peaks[r["dtype"]]
    if a.json:
        Path(a.json).write_text(json.dumps({"peaks": peaks, "rows": rows}, indent=1))
    print(f"allocator: {a.allocator} ({PRELOAD.get('LD_PRELOAD', 'glibc malloc')})")
    print(render(rows, peaks, a.device))


def render(rows: list[dict], peaks: dict, device: str) -> str:
    mem = "peak GPU MB" if device == "cuda" else "peak RSS MB"
    lines = [f"matmul peak measured in this run: "
             + ", ".join(f"{d} {p / 1e12:.2f} TFLOP/s" for d, p in peaks.items()), "",
             f"| case | model | dtype | train samples/s | fwd ms | {mem} | GFLOP/sample | % of peak | note |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if "samples_per_s" not in r:
            lines.append(f"| {r['case']} | {r['model']} | {r['dtype']} | – | – | – | – | – | {r['error']} |")
            continue
        lines.append(
            f"| {r['case']} | {r['model']} | {r['dtype']} | {r['samples_per_s']:.3g} | {r['forward_ms']:.4g} | "
            f"{r['peak_mb']:.0f} | {r['flops_per_sample'] / 1e9:.1f} | {100 * r.get('peak_share', float('nan')):.0f}% | "
            f"{r.get('note', '')} |")
    # ours vs the fastest peer, per case
    lines.append("")
    for case in dict.fromkeys(r["case"] for r in rows):
        ok = [r for r in rows if r["case"] == case and "samples_per_s" in r]
        ours = [r for r in ok if r["model"] == "ours"]
        peers = [r for r in ok if not r["model"].startswith("ours")]
        if ours and peers:
            best_o = max(ours, key=lambda r: r["samples_per_s"])
            best_p = max(peers, key=lambda r: r["samples_per_s"])
            lines.append(f"{case}: ours best {best_o['samples_per_s']:.3g} samples/s ({best_o['dtype']}) = "
                         f"{best_o['samples_per_s'] / best_p['samples_per_s']:.2f}x the fastest peer "
                         f"({best_p['model']} {best_p['dtype']}, {best_p['samples_per_s']:.3g})")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
