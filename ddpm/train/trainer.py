"""The training loop: ``run_training(cfg, run_dir, callbacks, resume) -> TrainResult``.

One optimizer step = ``grad_accumulation`` micro-batches of ``batch_size``, each loss divided
by ``grad_accumulation`` before backward (the gradient is the mean over the micro-batches), then
gradient-norm clipping, the optimizer, the LR schedule and the EMA. A step whose loss or
gradient norm is not finite is skipped (counted as a step, weights untouched); after
``MAX_NONFINITE`` in a row training stops with NonFiniteLossError. The step never waits for the
host (``ddpm.train.step``): its numbers stay on the device (``ddpm.train.tally``) until the loop
reports (progress, metric steps, checkpoints, the end).

Exact resume: a checkpoint holds everything the next step depends on (weights, EMA, optimizer,
LR schedule, grad scaler, global RNG states, the position in the data stream, the interval
statistics and the non-finite counters: ``ddpm.train.trainer_state``), so on CPU a run stopped and
resumed produces the same losses as one that never stopped.

Several processes (torchrun or ``ddpm train --nproc``; ``ddpm.train.distributed``): each reads
its share of every global micro-batch and DDP averages the gradients, so a job trains like one
process on the same config; rank 0 alone writes the run folder and calls the callbacks, and a
checkpoint resumes on any number of processes. A metric step's preview samples are drawn by
every process together (``ddpm.train.metric_samples``).
"""
from __future__ import annotations

import logging
import time
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Union

import numpy as np
import random
import torch
from torch.utils.data import DataLoader

from ddpm.config import TrainConfig, config_to_dict
from ddpm.precision import autocast_dtype, resolve_precision

from ddpm.run import checkpoint as ck
from ddpm.run.atomic import atomic_write_text
from ddpm.run.errors import RunError
from ddpm.run.run_dir import RunPaths, log_to_file, now_iso
from ddpm.run.sample_files import save_samples

from . import distributed as dd
from .callbacks import ProgressInfo, ProgressThrottle, TrainCallbacks
from .data_order import InfiniteOrder, RankShard, SeededItems, ignore_sigint_in_worker
from .ema import EMA
from .errors import NonFiniteLossError
from .lr import make_scheduler
from .metric_samples import DrawnSamples, draw_metric_samples
from .metrics import HeldOut, MetricsLog, format_metrics_line, intensity_stats, json_safe
from .step import optimizer_step
from .tally import MAX_NONFINITE, StepTally, TallyRead
from .trainer_state import checkpoint_state, restore

log = logging.getLogger("ddpm.train")


@dataclass(frozen=True)
class TrainResult:
    status: Literal["completed", "stopped"]
    step: int
    final_checkpoint: Optional[Path]  # the checkpoint written last (the final one when completed)


def run_training(cfg: TrainConfig, run_dir: Union[str, Path], callbacks: Optional[TrainCallbacks] = None,
                 resume: bool = True) -> TrainResult:
    """Train ``cfg`` in ``run_dir``. With ``resume`` (default) a run folder holding checkpoints
    continues from the newest; without it such a folder is an error (nothing is overwritten)."""
    return Trainer(cfg, run_dir, callbacks).run(resume=resume)


class Trainer:
    """The loop and its state. ``build_datasets`` / ``build_model`` are the seams a test or a
    custom dataset (e.g. an overridden ``read_volume``) can replace in a subclass."""

    progress_interval_s = 1.0  # minimum seconds between on_progress calls (metric steps always report)

    def __init__(self, cfg: TrainConfig, run_dir: Union[str, Path], callbacks: Optional[TrainCallbacks] = None):
        self.cfg = cfg
        self.paths = RunPaths(run_dir)
        self.cb = callbacks or TrainCallbacks()
        self.step = 0
        self.consumed = 0
        self.skipped = 0
        self.streak = 0  # non-finite steps in a row up to the last read
        self.interval = {"loss_sum": 0.0, "gn_sum": 0.0, "count": 0}
        self.progress_sums = {"loss": 0.0, "n": 0}  # since the previous progress report
        self.last_ckpt: Optional[Path] = None
        self.last_ckpt_step = -1
        self.dist: Optional[dd.Dist] = None  # set by run() (or the first _setup): the job's processes

    # ---- seams -----------------------------------------------------------------------------
    def build_datasets(self) -> tuple[Any, Any]:
        from ddpm.data import build_datasets
        return build_datasets(self.cfg, progress=self.cb.on_phase)  # "checking files 3/40"...

    def build_model(self, device: torch.device) -> torch.nn.Module:
        from ddpm.diffusion import DDPM
        return DDPM.from_config(self.cfg, device=device)

    # ---- set-up ----------------------------------------------------------------------------
    def _precision(self) -> None:
        # "auto" and the slow-bf16 warning are decided in ddpm.precision, the one place for them
        self.precision = resolve_precision(self.cfg.model.precision, self.device, log)
        dtype = autocast_dtype(self.precision)
        self.autocast: Callable[[], Any] = (
            (lambda: torch.autocast(self.device.type, dtype=dtype)) if dtype else nullcontext)
        self.fp16 = self.precision.precision == "fp16"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.fp16)

    def _setup(self, resume: bool) -> Optional[Path]:
        cfg = self.cfg
        self.paths.create()
        if self.dist is None:
            self.dist, self.device = dd.start(cfg.gpu)
        self.micro_batch = dd.split_batch(cfg.dataset.batch_size, self.dist.world_size)
        if not self.dist.is_main:
            self.cb = dd.RankCallbacks(self.cb)  # only rank 0 reports
            logging.getLogger("ddpm").setLevel(logging.ERROR)  # rank 0 says it once
        if self.dist.is_main:
            ck.remove_stale_temporaries(self.paths.checkpoints)
        # one decision, broadcast: every rank resumes the same file (a shared folder may lag)
        latest = dd.from_main(ck.latest_checkpoint(self.paths.checkpoints), self.dist)
        if latest is not None and not resume:
            raise RunError(f"{self.paths.root} already holds checkpoints (newest: {latest.path.name}); "
                           "resume it or choose another run name")
        self._precision()
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        random.seed(cfg.seed)

        self.cb.on_phase("preparing data")
        self.train_ds, self.val_ds = self.build_datasets()
        if len(self.train_ds) == 0:
            raise RunError(f"dataset.path: no training items found in {cfg.dataset.path}")
        self.output_spacing = [float(s) for s in getattr(self.train_ds, "output_spacing", None) or []] or None

        self.cb.on_phase("building model")
        self.model = self.build_model(self.device)
        unet = getattr(self.model, "unet", None)
        if self.device.type == "cuda" and self.precision.precision == "fp32" and hasattr(unet, "contiguous_format"):
            # channels-last (the UNet's default) is faster on CPU and in bf16 on CUDA, but in fp32
            # on CUDA the contiguous layout is (bench/RESULTS.md "engine")
            unet.contiguous_format()
        self.model.train()
        self.ema = EMA(self.model, cfg.model.ema_decay) if cfg.model.use_ema else None
        opt_cls = torch.optim.AdamW if cfg.model.optimizer == "adamw" else torch.optim.Adam
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        # fused: one kernel over all parameters instead of ~10 small ops per tensor per step
        fused = self.device.type in ("cpu", "cuda") and all(p.is_floating_point() for p in self.params)
        self.optimizer = opt_cls(self.params, lr=cfg.model.lr, weight_decay=cfg.model.weight_decay,
                                 fused=fused or None)
        self.scheduler = make_scheduler(self.optimizer, cfg.model.warmup_steps, cfg.model.iterations,
                                        cfg.model.lr_schedule)
        self.metrics_log = MetricsLog(self.paths.metrics)

        resumed_from = None
        rng = None
        if latest is not None:
            rng = self._load(latest.path)
            resumed_from = latest.path
        if self.dist.is_main:
            # records past the start step come from a run that died before its next checkpoint,
            # or before its first one (this start is then at step 0 and keeps none)
            self.metrics_log.truncate_after(self.step, atomic_write_text)
        self.start_info = {"at": now_iso(), "step": self.step, "device": str(self.device),
                           "precision": self.precision.precision, "precision_reason": self.precision.reason,
                           "world_size": self.dist.world_size}
        if self.dist.is_main:
            self.paths.write_json(self.paths.config, config_to_dict(cfg))
            info = self.paths.read_run_json()
            info.update({"run_name": self.paths.root.name, "dims": cfg.dims, "output_spacing": self.output_spacing})
            info.setdefault("created_at", now_iso())
            info.setdefault("starts", []).append(self.start_info)
            self.paths.write_json(self.paths.run_json, info)

        self.order = InfiniteOrder(len(self.train_ds), cfg.seed, start=self.consumed)
        nw = cfg.dataset.num_workers
        sampler = (RankShard(self.order, cfg.dataset.batch_size, self.dist.rank, self.dist.world_size)
                   if self.dist.active else self.order)
        self.loader = DataLoader(
            SeededItems(self.train_ds, cfg.seed), batch_size=self.micro_batch, sampler=sampler,
            num_workers=nw, pin_memory=cfg.dataset.pin_memory and self.device.type == "cuda",
            persistent_workers=nw > 0, worker_init_fn=ignore_sigint_in_worker if nw > 0 else None,
            generator=torch.Generator().manual_seed(cfg.seed))
        self.heldout: Optional[HeldOut] = None
        self.drawn: Optional[DrawnSamples] = None  # the metric step's samples (rank 0)
        self.tally = StepTally(self.device, self.step, self.skipped, self.streak)
        self.loss_module = dd.wrap(dd.LossOf(self.model), self.dist, self.device)
        if rng is not None:
            ck.restore_rng(rng)  # last: nothing after this may draw random numbers before step 1
            if "device" in rng and self.device.type == "cuda":
                # this process's own device stream (capture_rng's per-index list names rank 0's GPUs)
                torch.cuda.set_rng_state(rng["device"].cpu(), self.device)
        return resumed_from

    def _load(self, path: Path) -> dict[str, Any]:
        # on the CPU first: RNG states must stay CPU tensors; load_state_dict moves the rest
        rng = restore(self, ck.load_checkpoint(path, map_location="cpu"), path)
        self.last_ckpt, self.last_ckpt_step = path, self.step
        log.info("resuming from step %d (%s)", self.step, path)
        return rng

    # ---- checkpoints -----------------------------------------------------------------------
    def save(self, final: bool = False) -> Path:
        self.read_tally()  # the device counters go into the checkpoint
        if not self.dist.is_main:  # every rank holds the same state; rank 0 writes it
            self.last_ckpt = self.paths.checkpoints / ck.checkpoint_name(self.step, final)
            self.last_ckpt_step = self.step
            return self.last_ckpt
        state = checkpoint_state(self)
        path = ck.save_checkpoint(state, self.paths.checkpoints, self.step, final=final)
        ck.prune_checkpoints(self.paths.checkpoints, self.cfg.model.keep_checkpoints)
        self.last_ckpt, self.last_ckpt_step = path, self.step
        log.info("checkpoint %s", path.name)
        self.cb.on_checkpoint(self.step, path)
        return path

    # ---- one optimizer step ----------------------------------------------------------------
    def train_step(self, batches: Any) -> tuple[float, float, bool]:
        """(mean loss, grad norm, finite) of one optimizer step (``ddpm.train.step``), read back
        at once: for tests and notebooks. The loop steps without reading (``read_tally``)."""
        out = optimizer_step(self, batches)
        loss, grad_norm, nonfinite = torch.stack([out.loss, out.grad_norm, out.nonfinite.float()]).tolist()
        return loss, grad_norm, not nonfinite

    def read_tally(self) -> TallyRead:
        """The steps' numbers since the previous read, brought to the host: the interval sums
        (``self.interval``), the skipped count and the streak. Raises NonFiniteLossError when the
        streak reached MAX_NONFINITE: found at this read rather than at that step (reading every
        step would make each step wait for the host), but naming the step it happened at."""
        r = self.tally.read()
        self.interval["loss_sum"] += r.loss_sum
        self.interval["gn_sum"] += r.grad_norm_sum
        self.interval["count"] += r.count
        self.progress_sums["loss"] += r.progress_loss_sum
        self.progress_sums["n"] += r.progress_count
        if r.skipped > self.skipped:
            log.warning("up to step %d: %d more step(s) skipped for a non-finite loss or gradient (%d in a "
                        "row at step %d; %d in all)", r.step, r.skipped - self.skipped, r.streak, r.step, r.skipped)
        self.skipped, self.streak = r.skipped, r.streak
        if r.tripped_at:
            raise NonFiniteLossError(
                f"training stopped at step {r.tripped_at}: {MAX_NONFINITE} consecutive non-finite losses or "
                "gradients; lower model.lr, set model.grad_clip, or use precision fp32 "
                f"(last good checkpoint: {self.last_ckpt or 'none'})")
        return r

    # ---- metrics ---------------------------------------------------------------------------
    def _heldout(self) -> HeldOut:
        if self.heldout is None:
            source = self.val_ds if self.val_ds is not None and len(self.val_ds) > 0 else self.train_ds
            if source is self.train_ds:
                log.warning("no held-out items (dataset.val_fraction=0 or too few files): "
                            "val_loss is measured on training items")
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.cfg.seed)
                self.heldout = HeldOut(source, self.model.num_timesteps, self.cfg.seed)
        return self.heldout

    def draw_samples(self) -> Optional[DrawnSamples]:
        """A metric step's preview samples, drawn by every rank (each calls this), on rank 0."""
        m = self.cfg.model
        count = getattr(m, "metric_samples", 0)  # a config that previews nothing (fine-tuning) has none
        if count <= 0:
            return None
        eval_model = self.ema.model if self.ema is not None else self.model
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # metrics never shift the training RNG
            return draw_metric_samples(eval_model, count, self.dist, self.cfg.seed, m.metric_sampler,
                                       m.metric_steps, autocast_dtype(self.precision))

    def metrics(self, rates: dict[str, float]) -> dict[str, Any]:
        """Rank 0's part of a metric step: the held-out loss, the files of ``self.drawn``, the record."""
        cfg, m = self.cfg, self.cfg.model
        n = self.interval["count"]
        rec: dict[str, Any] = {
            "step": self.step, "time": time.time(),
            "epoch": self.consumed / len(self.train_ds),
            "train_loss": self.interval["loss_sum"] / n if n else float("nan"),
            "grad_norm": self.interval["gn_sum"] / n if n else float("nan"),
            "skipped_steps": self.skipped, **rates,
        }
        eval_model = self.ema.model if self.ema is not None else self.model
        held = self._heldout()
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # metrics never shift the training RNG
            rec.update(held.denoising_loss(eval_model, cfg.dataset.batch_size * 2, self.autocast))
        files = []
        if self.drawn is not None:
            files = save_samples(self.drawn.x01, self.paths.samples_at(self.step), self.output_spacing)
            rec.update(intensity_stats(self.drawn.x01, held.data01()))
            rec["sample_time_s"] = self.drawn.seconds
            self.drawn = None
        self.interval = {"loss_sum": 0.0, "gn_sum": 0.0, "count": 0}
        rec = json_safe(rec)
        self.metrics_log.append(rec)
        log.info(format_metrics_line(rec, m.iterations))
        if files:
            self.cb.on_samples(self.step, files)
        self.cb.on_metrics(self.step, rec)
        return rec

    # ---- the loop --------------------------------------------------------------------------
    def run(self, resume: bool = True) -> TrainResult:
        self.paths.create()
        self.dist, self.device = dd.start(self.cfg.gpu)
        try:
            if not self.dist.is_main:  # one train.log, written by rank 0
                return self._run(resume)
            with log_to_file(self.paths.log, log):
                return self._run(resume)
        finally:
            dd.finish(self.dist)

    def _run(self, resume: bool) -> TrainResult:
        cfg, m = self.cfg, self.cfg.model
        resumed_from = self._setup(resume)
        total = m.iterations
        samples_per_step = cfg.dataset.batch_size * cfg.dataset.grad_accumulation
        log.info("%s at step %d of %d on %s in %s (%s)", "resumed" if resumed_from else "started",
                 self.step, total, self.device, self.precision.precision, self.precision.reason)
        if self.device.type == "cpu":
            from ddpm.nn import kernels

            self.cb.on_phase("loading kernels")
            log.info(kernels.status())  # builds them on first use; says why when they are not used
        self.cb.on_run_info(dict(self.start_info))
        self.cb.on_phase("training")
        self.cb.on_start(self.step, total, resumed_from)
        if self.step >= total:
            path = self.last_ckpt if self.last_ckpt and self.last_ckpt.name.endswith("-final.pt") else self.save(final=True)
            log.info("already complete at step %d", self.step)
            return TrainResult("completed", self.step, path)

        throttle = ProgressThrottle(self.progress_interval_s)
        window: deque[float] = deque(maxlen=50)  # durations of recent steps (excludes metrics)
        started = time.perf_counter()
        batches = iter(self.loader)
        stop_vote = dd.StopVote(self.dist, self.device)
        try:
            while self.step < total:
                if stop_vote(self.cb.should_stop()):
                    stop_vote.settle()
                    path = self.last_ckpt if self.last_ckpt_step == self.step else self.save()
                    log.info("stopped at step %d on request", self.step)
                    return TrainResult("stopped", self.step, path)
                t0 = time.perf_counter()
                lr = self.optimizer.param_groups[0]["lr"]  # the rate this step uses
                optimizer_step(self, batches)  # no host read: its numbers stay in self.tally
                self.step += 1
                self.consumed += samples_per_step
                window.append(time.perf_counter() - t0)
                it_s = len(window) / max(sum(window), 1e-9)
                rates = {"lr": lr, "it_s": it_s, "samples_s": it_s * samples_per_step,
                         "elapsed_s": time.perf_counter() - started}
                metric_due = self.step % m.freq_metrics == 0 or self.step == total
                if throttle.due(force=metric_due or self.step == total):
                    last = self.read_tally()  # every rank reads: a streak stops them all
                    prog, self.progress_sums = self.progress_sums, {"loss": 0.0, "n": 0}
                    self.cb.on_progress(ProgressInfo(
                        step=self.step, total=total, loss=prog["loss"] / prog["n"] if prog["n"] else float("nan"),
                        lr=lr, grad_norm=last.last_grad_norm, it_s=it_s,
                        samples_s=rates["samples_s"], eta_s=(total - self.step) / it_s,
                        elapsed_s=rates["elapsed_s"]))
                if metric_due:
                    self.cb.on_phase("evaluating")  # held-out loss and preview samples: no steps meanwhile
                    self.drawn = self.draw_samples()  # every rank draws its share
                    if self.dist.is_main:  # the other ranks wait at the next step
                        self.metrics(rates)
                    self.cb.on_phase("training")
                if self.step == total:
                    stop_vote.settle()
                    path = self.save(final=True)
                    log.info("completed %d steps", total)
                    return TrainResult("completed", self.step, path)
                if self.step % m.freq_checkpoint == 0:
                    self.save()
            raise AssertionError("unreachable")
        finally:
            shutdown = getattr(batches, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
