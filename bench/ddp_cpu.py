"""Training samples/s on this CPU: one process with 1 or 2 threads against `ddpm train --nproc 2`
(two processes of 1 thread each, gloo), on the small_3d preset at 32^3 (fp32, the examples'
phantoms). Each row is the real CLI in its own process; the rate is the engine's own (the mean
over the last steps, start-up excluded), read from metrics.jsonl.

    PYTHONPATH=. .venv/bin/python bench/ddp_cpu.py [--steps 16]
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

ROOT = Path(__file__).resolve().parents[1]
ROWS = {  # name: (extra CLI flags, OMP threads per process)
    "1 process x 1 thread": (["--threads", "1"], 1),
    "1 process x 2 threads": (["--threads", "2"], 2),
    "2 processes x 1 thread": (["--threads", "1", "--nproc", "2"], 1),
}


def config(folder: Path, steps: int) -> Path:
    cfg = json.loads((ROOT / "configs" / "presets" / "small_3d.json").read_text())
    cfg.update(gpu=-1, experiment_path=str(folder / "exp"))
    cfg["model"].update(iterations=steps, freq_metrics=steps, freq_checkpoint=10 * steps, metric_samples=0,
                        precision="fp32", warmup_steps=0)
    cfg["dataset"].update(path=str(ROOT / "examples" / "phantoms3d"), num_workers=0)
    path = folder / "bench.json"
    path.write_text(json.dumps(cfg))
    return path


def run(cfg: Path, name: str, flags: list[str], threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ddpm", "train", "--config", str(cfg), "--name", name, *flags],
                          env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{name}: {done.stderr[-1500:]}")
    rec = json.loads((cfg.parent / "exp" / name / "metrics.jsonl").read_text().splitlines()[-1])
    return {"samples_s": rec["samples_s"], "it_s": rec["it_s"], "wall_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=16)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config(Path(tmp), args.steps)
        print(f"small_3d at 32^3, batch 4, fp32, {args.steps} steps, {os.cpu_count()} CPUs")
        print(f"{'row':<26} {'samples/s':>10} {'it/s':>7} {'wall s':>7}")
        for i, (name, (flags, threads)) in enumerate(ROWS.items()):
            r = run(cfg, f"row{i}", flags, threads)
            print(f"{name:<26} {r['samples_s']:>10.2f} {r['it_s']:>7.3f} {r['wall_s']:>7.1f}", flush=True)


if __name__ == "__main__":
    main()
