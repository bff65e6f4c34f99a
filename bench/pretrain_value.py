"""Does DDPM pretraining pay when labels are few? Pretrained against scratch on 3D phantoms.

    PYTHONPATH=. .venv/bin/python bench/pretrain_value.py            # the full bench (see README)
    PYTHONPATH=. .venv/bin/python bench/pretrain_value.py --quick    # end-to-end smoke run, minutes

1. A procedural family of 3D phantoms, each from one seed: a body (an irregular ellipsoid) holding
   an organ (class 1: a large irregular blob with a fine texture), a vessel (class 2: a thin tube
   winding along z), a cyst wall (class 3: a thin shell around dark fluid) and unlabelled
   distractor blobs. Every structure's intensity is the body's plus a random offset from
   overlapping ranges that keep it visible against the tissue around it, then a smooth
   multiplicative bias field and noise: no threshold separates the classes, their shape and
   context do.
2. A DDPM is pretrained (``ddpm.train.run_training``, min-SNR-5 weighting) on the unlabelled phantoms.
3. ``ddpm.finetune.study.run_study`` (what ``ddpm study`` runs) fine-tunes the pretrained U-Net
   and the same U-Net from scratch with each label budget and seed, the same steps for both,
   and evaluates every run on the held-out phantoms (mean Dice of the three classes).
4. It prints the table (budget, scratch mean ± sd, pretrained mean ± sd, gain in Dice points),
   the Dice of an image-blind prediction (the floor either arm must clear before its number says
   anything) and leaves study.json and study.png in the work folder.

Everything is kept in --work (default experiments/bench/pretrain_value, or .../quick): a rerun
with the same flags reuses the phantoms, the pretrained run and every finished fine-tune run.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

# as the `ddpm` command does: OpenMP threads that spin while they wait steal a shared CPU's cores
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddpm.config import load_config, load_finetune_config  # noqa: E402
from ddpm.finetune.study import StudyProgress, format_study_table, run_study  # noqa: E402
from ddpm.train import TrainCallbacks, run_training  # noqa: E402

CLASSES = {1: "organ", 2: "vessel", 3: "cyst wall"}
SPACING_MM = 1.5
# seeds of the three sets never meet: unlabelled from 0, labelled from 100000, held-out from 200000
SEED_BASE = {"unlabelled": 0, "labelled": 100_000, "heldout": 200_000}

FINETUNE_BATCH = 2
PRETRAIN_BATCH = 4
# min-SNR-5 weighting at lr 2e-3: the pretraining whose samples first showed the cyst (bench/RESULTS.md,
# "What the pretrained denoiser knows"); 24^3 leaves it about 10k steps of the 45 minutes
PRETRAIN_LR = 2e-3
PRETRAIN_MIN_SNR = 5.0
# the phantom family's design: a folder of phantoms of another design is refused, never reused
PHANTOM_DESIGN = 2
# 600 fine-tune steps: at 200 and 400 both arms stay at the image-blind floor (bench/RESULTS.md)
FULL = dict(minutes=45.0, size=24, unlabelled=240, labels="1,2,4,8", seeds=3, finetune_steps=600, heldout=20)
QUICK = dict(minutes=6.0, size=24, unlabelled=24, labels="1,4", seeds=2, finetune_steps=20, heldout=6)
# the study's time per run besides its steps: start-up, checkpoint and validation (seconds), and
# evaluation (about one fine-tune step's time per held-out case: reading, resampling, a forward pass);
# 9 s: the quiet-machine run's 24 runs took 38.0 min where 5 s had planned 36.3 (bench/RESULTS.md)
_RUN_OVERHEAD_S = 9.0


def _smooth(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """A smooth random field (about unit variance) on a size^3 grid: noise on a cells^3 grid,
    interpolated trilinearly."""
    coarse = torch.from_numpy(rng.standard_normal((1, 1, cells, cells, cells)).astype(np.float32))
    return F.interpolate(coarse, size=(size,) * 3, mode="trilinear", align_corners=True)[0, 0].numpy()


def phantom(seed: int, size: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """(image float32, label uint8 with classes 0..3) of the phantom of ``seed``.

    Each labelled structure differs from the tissue around it by an offset of at least 0.05-0.06
    (the organ and the distractors brighter or darker, by a coin toss; tissue 0.35-0.55, noise sd
    0.02-0.04), and the classes' and distractors' ranges overlap one another: every structure can
    be seen in its own image, and none can be told from the others by its intensity."""
    rng = np.random.default_rng(seed)
    u = rng.uniform

    def either_sign() -> float:
        return float(rng.choice([-1.0, 1.0]))

    axis = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    x0, y0, z = np.meshgrid(axis, axis, axis, indexing="ij")
    turn = u(-0.35, 0.35)  # the body lies a little rotated about z
    x, y = math.cos(turn) * x0 + math.sin(turn) * y0, -math.sin(turn) * x0 + math.cos(turn) * y0

    def ellipsoid(centre, radii):
        return sum(((c - m) / r) ** 2 for c, m, r in zip((x, y, z), centre, radii))

    body = ellipsoid((0, 0, 0), (u(0.78, 0.92), u(0.6, 0.74), u(0.86, 0.96))) < 1 + 0.1 * _smooth(rng, size, 4)
    organ = body & (ellipsoid((u(-0.45, -0.25), u(-0.15, 0.15), u(-0.2, 0.2)),
                              (u(0.28, 0.4), u(0.24, 0.34), u(0.35, 0.5))) < 1 + 0.3 * _smooth(rng, size, 5))
    cyst_centre = np.array([u(0.0, 0.3), u(-0.45, -0.3), u(-0.4, 0.4)])
    dist = np.sqrt((x - cyst_centre[0]) ** 2 + (y - cyst_centre[1]) ** 2 + (z - cyst_centre[2]) ** 2)
    # wall and vessel at least about two voxels across at 24^3
    radius, wall = u(0.18, 0.26), u(0.06, 0.08)
    shell, fluid = body & (np.abs(dist - radius) < wall), body & (dist < radius - wall)
    phase, freq = u(0, 2 * math.pi, 2), u(1.5, 3.0, 2)
    cx = u(0.2, 0.4) + u(0.05, 0.15) * np.sin(freq[0] * z + phase[0])
    cy = u(-0.2, 0.2) + u(0.05, 0.15) * np.cos(freq[1] * z + phase[1])
    vessel = body & ((x - cx) ** 2 + (y - cy) ** 2 < u(0.11, 0.15) ** 2)

    label = np.zeros((size,) * 3, np.uint8)
    label[organ], label[shell], label[vessel] = 1, 3, 2
    tissue = u(0.35, 0.55)
    image = np.full(label.shape, 0.05, np.float32)
    image[body] = tissue + 0.03 * _smooth(rng, size, 6)[body]
    for _ in range(rng.integers(2, 5)):  # unlabelled blobs as bright or dark as the classes
        blob = body & (ellipsoid(u(-0.6, 0.6, 3) * (0.7, 0.55, 0.8), [u(0.07, 0.14)] * 3) < 1) & (label == 0)
        image[blob] = tissue + either_sign() * u(0.05, 0.2)
    image[organ] = tissue + either_sign() * u(0.05, 0.15) + 0.05 * _smooth(rng, size, 12)[organ]  # texture
    image[fluid & (label == 0)] = tissue - u(0.06, 0.2)
    image[shell] = tissue + u(0.06, 0.2)
    image[vessel] = tissue + u(0.06, 0.25)
    image = image * np.exp(0.3 * _smooth(rng, size, 3)) + rng.normal(0, u(0.02, 0.04), label.shape)
    return image.astype(np.float32), label


def write_set(folder: Path, kind: str, count: int, size: int) -> Path:
    """``count`` phantoms as NIfTI: images only (unlabelled) or images/ and labels/. A set written
    before with the same design, size and count is reused; one of another is refused."""
    labelled = kind != "unlabelled"
    images = folder / "images" if labelled else folder
    stamp = folder.parent / f"{folder.name}.phantoms.json"  # beside the set: the loaders read the folder
    what = {"design": PHANTOM_DESIGN, "size": size, "count": count}
    before = json.loads(stamp.read_text()) if stamp.is_file() else None
    if before == {**what, "complete": True}:
        return folder
    if images.is_dir() and any(images.glob("*.nii.gz")) and (before or {}).get("design") != PHANTOM_DESIGN:
        raise SystemExit(f"{folder} holds phantoms of another design (bench/pretrain_value.py's "
                         f"PHANTOM_DESIGN is {PHANTOM_DESIGN}): give another --work")
    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({**what, "complete": False}))  # a set cut short is written again
    for old in [*images.glob("phantom*.nii.gz"), *(folder / "labels").glob("phantom*.nii.gz")]:
        old.unlink()  # a set of another count or size: none of its files may stay in the new one
    images.mkdir(parents=True, exist_ok=True)
    if labelled:
        (folder / "labels").mkdir(exist_ok=True)
    affine = np.diag([SPACING_MM] * 3 + [1.0])
    for i in range(count):
        image, label = phantom(SEED_BASE[kind] + i, size)
        name = f"phantom{i:04d}.nii.gz"
        nib.save(nib.Nifti1Image(image, affine), str(images / name))
        if labelled:
            nib.save(nib.Nifti1Image(label, affine), str(folder / "labels" / name))
    stamp.write_text(json.dumps({**what, "complete": True}))
    return folder


def image_blind_dice(labelled: Path, heldout: Path) -> float:
    """Mean foreground Dice on the held-out phantoms of one fixed label map that ignores the
    image: the voxelwise majority label of the labelled pool. The phantoms share a layout, so
    position alone scores well above zero; a segmenter below this has not learned to look."""
    from ddpm.finetune.losses import dice_per_class, mean_over

    def labels(folder: Path) -> list[np.ndarray]:
        return [np.asarray(nib.load(str(f)).dataobj).astype(np.int64)
                for f in sorted((folder / "labels").glob("*.nii.gz"))]

    k = len(CLASSES) + 1
    votes = sum(np.stack([lab == c for c in range(k)]).astype(np.int64) for lab in labels(labelled))
    blind = votes.argmax(axis=0)
    return mean_over([dice_per_class(blind, lab, k) for lab in labels(heldout)], k)[0]


def unet(args: argparse.Namespace) -> dict:
    return {"dim": args.dim, "channel_mults": [1, 2, 4], "res_blocks": 1, "num_head_channels": 8}


def finetune_config(work: Path, pretrained: Path, labelled: Path, pool: int, args: argparse.Namespace) -> dict:
    model = {"iterations": args.finetune_steps, "freeze": args.freeze, "precision": "fp32",
             "freq_metrics": args.finetune_steps, "freq_checkpoint": args.finetune_steps,
             "timestep": args.timestep}  # null: the schema's default
    if args.lr is not None:  # omitted: the schema's default
        model["lr"] = args.lr
    return {
        "pretrained": str(pretrained), "gpu": args.gpu, "seed": 0, "experiment_path": str(work),
        "task": {"type": "segmentation", "num_classes": len(CLASSES) + 1}, "model": model,
        # one case of the labelled pool held out for the runs' own validation Dice
        "dataset": {"path": str(labelled), "batch_size": FINETUNE_BATCH, "val_fraction": 1.0 / pool}}


def seconds_per_finetune_step(args: argparse.Namespace) -> float:
    """A fine-tune step of the bench's segmenter (forward, backward, Adam), timed on this machine
    now: how long the study will take, so pretraining gets the rest of the time budget."""
    from ddpm.finetune.losses import dice_ce_loss
    from ddpm.finetune.segmenter import Segmenter
    from ddpm.nn import UNet

    device = torch.device("cpu" if args.gpu < 0 else f"cuda:{args.gpu}")
    cfg = load_config({"is_3d": True, "model": {"unet": unet(args)}, "dataset": {"image_size": args.size}})
    seg = Segmenter(UNet.from_config(cfg), len(CLASSES) + 1).to(device)
    opt = torch.optim.Adam(seg.parameters())
    x = torch.randn(FINETUNE_BATCH, 1, *(args.size,) * 3, device=device)
    y = torch.randint(0, len(CLASSES) + 1, (FINETUNE_BATCH, *(args.size,) * 3), device=device)
    times = []
    for _ in range(4):
        t0 = time.perf_counter()
        loss = dice_ce_loss(seg(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))  # the first step pays for allocations and kernel set-up


class Deadline(TrainCallbacks):
    """Stops pretraining (with a checkpoint) at a wall-clock deadline; prints its metric lines."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def on_metrics(self, step: int, metrics: dict) -> None:
        print(f"  pretrain step {step}: loss {metrics['train_loss']:.4f}", flush=True)

    def should_stop(self) -> bool:
        return time.monotonic() >= self.deadline


def pretrain(work: Path, data: Path, seconds: float, args: argparse.Namespace) -> tuple[Path, int]:
    """(the pretraining run folder, its steps): trained for ``seconds`` (or --pretrain-steps);
    a pretraining that finished before is reused."""
    run, done = work / "runs" / "pretrain", work / "runs" / "pretrain-done.json"
    what = {"unet": unet(args), "size": args.size, "unlabelled": args.unlabelled, "lr": PRETRAIN_LR,
            "min_snr_gamma": PRETRAIN_MIN_SNR, "phantoms": PHANTOM_DESIGN}
    if args.pretrain_batch != PRETRAIN_BATCH:  # keeps the key of folders pretrained before the flag
        what["batch"] = args.pretrain_batch
    if done.is_file():
        before = json.loads(done.read_text())
        if before["what"] != what:
            raise SystemExit(f"{work} holds a pretraining of {before['what']}, not {what}: give another --work")
        return run, before["steps"]
    cfg = load_config({
        "gpu": args.gpu, "experiment_path": str(work / "runs"), "is_3d": True, "seed": 0,
        "model": {"unet": unet(args), "beta_schedule": {"train": {"schedule": "cosine", "n_timestep": 1000}},
                  "lr": PRETRAIN_LR, "min_snr_gamma": PRETRAIN_MIN_SNR, "warmup_steps": 100,
                  "iterations": args.pretrain_steps or 1_000_000,
                  "precision": "fp32", "use_ema": True, "ema_decay": 0.995,  # a short run: a short average
                  "freq_metrics": 200, "freq_checkpoint": 200, "metric_samples": 0},
        "dataset": {"name": "volume3d", "path": str(data), "image_size": args.size, "batch_size": args.pretrain_batch,
                    "num_workers": 0, "val_fraction": 0.05}})
    t0 = time.perf_counter()
    result = run_training(cfg, run, Deadline(time.monotonic() + seconds))
    done.write_text(json.dumps({"what": what, "steps": result.step, "seconds": time.perf_counter() - t0}))
    return run, result.step


def study(work: Path, run: Path, labelled: Path, heldout: Path, budgets: list[int], pool: int,
          args: argparse.Namespace) -> dict:
    cfg = load_finetune_config(finetune_config(work, run, labelled, pool, args))
    started = time.perf_counter()

    def progress(event: StudyProgress) -> None:
        if event.phase in ("skipped", "finished"):
            print(f"[{event.index}/{event.total}] {event.run.name}: Dice {event.mean_dice:.4f}"
                  f"{' (done before)' if event.phase == 'skipped' else ''} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)

    return run_study(cfg, budgets, args.seeds, heldout, work / "study", progress=progress).study


def per_class_table(study: dict) -> str:
    """Mean Dice of each class over seeds, per budget and arm: which structures pretraining helps."""
    col = max(len(name) for name in CLASSES.values())
    width = (col + 1) * len(CLASSES) - 1
    lines = ["labelled  " + "  ".join(f"{arm:<{width}}" for arm in ("scratch", "pretrained")).rstrip(),
             "          " + "  ".join(" ".join(f"{n:>{col}}" for n in CLASSES.values()) for _ in range(2))]
    for b in study["budgets"]:
        cells = []
        for arm in ("scratch", "pretrained"):
            runs = [r for r in study["runs"] if r["arm"] == arm and r["labelled_cases"] == b]
            cells.append(" ".join(f"{np.mean([r['per_class'][str(c)] for r in runs]):{col}.3f}" for c in CLASSES))
        lines.append(f"{b:>8}  " + "  ".join(cells))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: few phantoms, runs and steps (minutes)")
    ap.add_argument("--work", type=Path, help="work folder (default experiments/bench/pretrain_value[-quick])")
    ap.add_argument("--minutes", type=float, help="time budget of the whole bench; pretraining gets what the "
                                                  "study (timed on this machine first) leaves")
    ap.add_argument("--size", type=int, help="phantom side in voxels")
    ap.add_argument("--unlabelled", type=int, help="unlabelled phantoms to pretrain on")
    ap.add_argument("--pretrain-steps", type=int, help="stop pretraining at this step if the time lasts")
    ap.add_argument("--labels", help="label budgets, comma-separated")
    ap.add_argument("--seeds", type=int, help="seeds per budget")
    ap.add_argument("--finetune-steps", type=int, help="steps of every fine-tune run (both arms)")
    ap.add_argument("--heldout", type=int, help="held-out labelled phantoms to evaluate on")
    ap.add_argument("--dim", type=int, default=8, help="U-Net channels of the first level (a multiple of 8)")
    ap.add_argument("--lr", type=float, help="fine-tune learning rate (both arms; default: the fine-tune "
                                              "schema's model.lr)")
    ap.add_argument("--freeze", choices=["none", "encoder"], default="none", help="pretrained arm's freezing")
    ap.add_argument("--timestep", type=int, help="the segmenter's fixed time input (model.timestep; "
                                                 "default: the fine-tune schema's)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--gpu", type=int, default=-1, help="CUDA index for pretraining and every fine-tune run "
                                                      "(default -1: the CPU, where the 45-minute target is set)")
    ap.add_argument("--pretrain-batch", type=int, default=PRETRAIN_BATCH, help="pretraining batch size")
    args = ap.parse_args()
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    torch.set_num_threads(args.threads)
    budgets = sorted({int(b) for b in args.labels.split(",")})
    pool = max(budgets) + 4  # draws from more cases than the largest budget, one held out for validation
    work = args.work or ROOT / "experiments" / "bench" / ("pretrain_value-quick" if args.quick else "pretrain_value")
    t0 = time.perf_counter()
    unlabelled = write_set(work / "unlabelled", "unlabelled", args.unlabelled, args.size)
    labelled = write_set(work / f"labelled-{pool}", "labelled", pool, args.size)
    heldout = write_set(work / f"heldout-{args.heldout}", "heldout", args.heldout, args.size)
    print(f"phantoms ({args.size}^3): {args.unlabelled} unlabelled, {pool} labelled, {args.heldout} held-out "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)

    step_s = seconds_per_finetune_step(args)
    runs = 2 * len(budgets) * args.seeds
    study_s = runs * ((args.finetune_steps + args.heldout) * step_s + _RUN_OVERHEAD_S)
    pretrain_s = args.minutes * 60 - (time.perf_counter() - t0) - study_s
    print(f"a fine-tune step takes {step_s:.2f} s here: the study's {runs} runs about {study_s / 60:.1f} min, "
          f"pretraining gets {max(pretrain_s, 60) / 60:.1f} min", flush=True)
    if pretrain_s < 60:
        print(f"warning: the study alone needs about {study_s / 60:.0f} min of the {args.minutes:g}; "
              "pretraining gets 1 min (a quiet machine, fewer --finetune-steps or a larger --minutes help)")
    t1 = time.perf_counter()
    run, steps = pretrain(work, unlabelled, max(pretrain_s, 60.0), args)
    t2 = time.perf_counter()
    print(f"pretraining: {steps} steps (batch {args.pretrain_batch}) on {args.unlabelled} phantoms ({t2 - t1:.0f} s)", flush=True)
    result = study(work, run, labelled, heldout, budgets, pool, args)
    t3 = time.perf_counter()
    print()
    print(format_study_table(result))
    print()
    print(per_class_table(result))
    print("(Dice of each class, mean over seeds)")
    print(f"image-blind floor (the labelled pool's voxelwise majority label, same held-out phantoms): "
          f"Dice {image_blind_dice(labelled, heldout):.3f}")
    print(f"{args.finetune_steps} fine-tune steps (batch {FINETUNE_BATCH}) per run, lr {result['config']['model']['lr']:g}, freeze "
          f"{args.freeze}, time input t = {result['config']['model']['timestep']}, U-Net dim {args.dim}; {len(result['runs'])} runs, each evaluated on {args.heldout} "
          f"held-out phantoms; mean Dice of {', '.join(CLASSES.values())}")
    print(f"time: pretraining {(t2 - t1) / 60:.1f} min, study {(t3 - t2) / 60:.1f} min, total "
          f"{(t3 - t0) / 60:.1f} min")
    print(f"plot and numbers: {work / 'study' / 'study.png'}, {work / 'study' / 'study.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
