"""Sample quality on a real (small) data set, end to end through the `ddpm` CLI, on this CPU.

    PYTHONPATH=. .venv/bin/python bench/quality_digits.py                  # train + score (~25 min)
    PYTHONPATH=. .venv/bin/python bench/quality_digits.py --minutes 5 --num 100   # quicker look
    PYTHONPATH=. .venv/bin/python bench/quality_digits.py --run DIR          # score an existing run

1. scikit-learn's 1797 handwritten digits (8x8) are written as 16x16 grey PNGs (bilinear).
2. `ddpm train` trains a small 2D model on them for a fixed wall-clock budget (default 15 min).
   Default (--lr-schedule constant): constant LR after warm-up, and a Ctrl-C at the deadline
   ends training (the CLI writes a checkpoint and exits 130), so the whole budget is used
   however busy the machine is. --lr-schedule cosine: a 30-step calibration run's it/s fixes the
   iterations so the cosine decay completes (the deadline Ctrl-C still guards).
3. 200 samples per sampler (ddpm ancestral 1000 steps, ddim 50, dpmpp2m 20; same seed, EMA
   weights) are scored by an RBF SVC trained on 80% of the real digit PNGs (isotonic-calibrated
   probabilities). A sample counts as a recognisable digit when the classifier gives it
   probability >= 0.9. Target: >= 90% recognisable and every digit >= 5% of the samples.
   The held-out 20% of real digits is scored the same way, as the ceiling of the metric.

Prints a table and, with --record, rewrites the "quality" section of bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SAMPLERS = [("ddpm", 1000), ("ddim", 50), ("dpmpp2m", 20)]
CONFIDENT = 0.9
LR = {"cosine": 2e-3, "constant": 1e-3}


def write_digits(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The digits as 16x16 PNGs; returns (images in [0, 1] as read back from the PNGs, labels)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for i, (img, label) in enumerate(zip(digits.images, digits.target)):
        small = Image.fromarray((img / 16.0 * 255.0).astype(np.uint8), "L")
        big = small.resize((16, 16), Image.BILINEAR)
        big.save(folder / f"digit_{i:04d}_{label}.png")
        images.append(np.asarray(big, dtype=np.float32) / 255.0)
    return np.stack(images), digits.target


def train_classifier(x: np.ndarray, y: np.ndarray, seed: int = 0):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import train_test_split
    from sklearn.svm import SVC

    xtr, xte, ytr, yte = train_test_split(x.reshape(len(x), -1), y, test_size=0.2, random_state=seed, stratify=y)
    # isotonic calibration: confident on real digits (Platt scaling was not: 84% >= 0.9) and not
    # on noise (uniform noise images: ~1% >= 0.9; an MLP's softmax gave 94%)
    clf = CalibratedClassifierCV(SVC(C=10.0, gamma="scale"), method="isotonic", cv=5).fit(xtr, ytr)
    return clf, xte, yte


def score(clf, images01: np.ndarray) -> dict:
    p = clf.predict_proba(images01.reshape(len(images01), -1))
    pred, conf = p.argmax(1), p.max(1)
    shares = np.bincount(pred, minlength=10) / len(pred)
    return {"confident": float((conf >= CONFIDENT).mean()), "min_share": float(shares.min()),
            "shares": shares.round(3).tolist(), "mean_conf": float(conf.mean())}


def bench_config(data: Path, runs: Path, iterations: int, schedule: str = "cosine") -> dict:
    return {
        "gpu": -1, "experiment_path": str(runs), "is_3d": False, "seed": 0,
        "model": {
            "unet": {"dim": 32, "channel_mults": [1, 2, 2], "res_blocks": 1, "attn_res": [4],
                     "num_head_channels": 32},
            "beta_schedule": {"train": {"schedule": "cosine", "n_timestep": 1000}},
            "lr": LR[schedule], "optimizer": "adamw", "loss_type": "l2", "objective": "pred_noise",
            "min_snr_gamma": 5.0, "use_ema": True, "ema_decay": 0.999, "iterations": iterations,
            "warmup_steps": min(100, iterations // 10), "lr_schedule": schedule,
            "freq_metrics": max(1, min(400, iterations // 5)), "freq_checkpoint": max(1, min(1000, iterations // 4)),
            "metric_samples": 16, "metric_sampler": "dpmpp2m", "metric_steps": 20,
        },
        "dataset": {"name": "image2d", "path": str(data), "image_size": 16, "batch_size": 64,
                    "num_workers": 0, "pin_memory": False, "val_fraction": 0.05},
    }


def cli_train(cfg: dict, work: Path, name: str, threads: int, deadline_s: float) -> tuple[float, int]:
    """Run `ddpm train` in a subprocess; Ctrl-C it at the deadline. Returns (seconds, exit code)."""
    path = work / f"{name}.json"
    path.write_text(json.dumps(cfg, indent=1))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "ddpm", "train", "--config", str(path), "--threads",
                             str(threads)], env=env)
    try:
        proc.wait(timeout=deadline_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # the CLI checkpoints and exits 130
        proc.wait()
    return time.perf_counter() - t0, proc.returncode


def measured_it_s(run: Path) -> float:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return float(rows[-1]["it_s"])


def load_pngs(files) -> np.ndarray:
    return np.stack([np.asarray(Image.open(f.preview_path), dtype=np.float32) / 255.0 for f in files])


def record(table: str, header: str) -> None:
    """Replace the '## quality' section of bench/RESULTS.md (other sections untouched)."""
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    section = f"## quality\n\n{header}\n\n{table}\n"
    start = text.find("## quality")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        nxt = text.find("\n## ", start + 1)
        text = text[:start] + section + (text[nxt + 1:] if nxt >= 0 else "")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=15.0, help="training wall-clock budget")
    ap.add_argument("--num", type=int, default=200, help="samples per sampler")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--workdir", type=Path, help="keep data and runs here (default: a temp folder)")
    ap.add_argument("--run", type=Path, help="score this existing run instead of training")
    ap.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant",
                    help="constant: train until the deadline (uses the whole budget whatever the machine "
                         "load); cosine: iterations fixed from the calibration run's it/s (a busy machine "
                         "at calibration leaves budget unused)")
    ap.add_argument("--record", action="store_true", help="write the table into bench/RESULTS.md")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT))
    from ddpm.sample import sample_run

    work = args.workdir or Path(tempfile.mkdtemp(prefix="quality-digits-"))
    work.mkdir(parents=True, exist_ok=True)
    x, y = write_digits(work / "digits")
    clf, xte, yte = train_classifier(x, y)
    real = score(clf, xte)
    acc = float((clf.predict(xte.reshape(len(xte), -1)) == yte).mean())
    print(f"classifier: held-out accuracy {acc:.3f}, real digits with p>={CONFIDENT}: {real['confident']:.3f}")

    train_s, steps, code = 0.0, 0, None
    run = args.run
    if run is None:
        budget = args.minutes * 60
        calib_s, _ = cli_train(bench_config(work / "digits", work / "runs", 30), work, "calibrate",
                               args.threads, deadline_s=300)
        it_s = measured_it_s(work / "runs" / "calibrate")
        if args.lr_schedule == "cosine":
            # leave ~20% of the budget for start-up, metric samples and checkpoints
            iters = max(50, int(it_s * budget * 0.8))
        else:
            iters = max(1000, int(it_s * budget * 4))  # more than fits: the deadline ends it
        print(f"calibration: {it_s:.2f} it/s -> {iters} iterations for {args.minutes:g} min")
        train_s, code = cli_train(bench_config(work / "digits", work / "runs", iters, args.lr_schedule), work,
                                  "digits", args.threads, deadline_s=budget)
        run = work / "runs" / "digits"
        from ddpm.run.checkpoint import latest_checkpoint
        steps = latest_checkpoint(run / "checkpoints").step  # a deadline stop is not a metric step
        print(f"trained {steps} steps in {train_s / 60:.1f} min (exit {code})")

    rows = []
    for sampler, n_steps in SAMPLERS:
        t0 = time.perf_counter()
        files = sample_run(run, args.num, sampler=sampler, steps=n_steps, seed=0,
                           out_dir=work / "samples" / f"{sampler}-{n_steps}", batch_size=args.num)
        secs = time.perf_counter() - t0
        s = score(clf, load_pngs(files))
        ok = s["confident"] >= 0.9 and s["min_share"] >= 0.05
        rows.append((f"{sampler}-{n_steps}", s, secs, ok))
        print(f"{sampler}-{n_steps}: {s['confident']:.3f} confident, min share {s['min_share']:.3f}, "
              f"{secs:.0f} s, {'PASS' if ok else 'FAIL'}", flush=True)

    lines = ["| sampler | recognisable (p >= 0.9) | smallest digit share | mean p | sampling s (200, CPU) | target |",
             "|---|---|---|---|---|---|",
             f"| real digits (held-out 20%) | {real['confident']:.3f} | {min(real['shares']):.3f} | "
             f"{real['mean_conf']:.3f} | - | ceiling |"]
    for name, s, secs, ok in rows:
        lines.append(f"| {name} | {s['confident']:.3f} | {s['min_share']:.3f} | {s['mean_conf']:.3f} | "
                     f"{secs:.0f} | {'pass' if ok else 'FAIL'} |")
    table = "\n".join(lines)
    print(table)
    cpu = platform.processor() or platform.machine()
    header = (f"`bench/quality_digits.py`, {time.strftime('%Y-%m-%d')}, CPU ({cpu}, {args.threads} thread(s), "
              f"shared machine), torch {torch.__version__}. Command: `PYTHONPATH=. .venv/bin/python "
              f"bench/quality_digits.py --lr-schedule {args.lr_schedule} --record`.\n\n"
              f"Model: 2D U-Net dim 32, mults [1,2,2], 1 res block, attention at 4x4 (0.8M parameters), "
              f"cosine schedule T=1000, eps-prediction with min-SNR-5, AdamW {LR[args.lr_schedule]:g} "
              f"{args.lr_schedule} LR{' until the deadline' if args.lr_schedule == 'constant' else ''}, batch 64, EMA 0.999. "
              f"Trained with `ddpm train` for {train_s / 60:.1f} min ({steps} steps) on sklearn's 1797 digits "
              f"as 16x16 PNGs. Scored with an RBF SVC (isotonic calibration) trained on 80% of the real digits (held-out accuracy "
              f"{acc:.3f}); target: >= 90% of {args.num} samples recognisable (p >= 0.9) and every digit "
              f">= 5%. Samples use the EMA weights, seed 0, one batch of {args.num}.")
    if args.record:
        record(table, header)
        print("recorded in bench/RESULTS.md")


if __name__ == "__main__":
    main()
