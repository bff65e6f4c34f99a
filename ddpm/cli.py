"""``ddpm train | sample | inspect | export`` (and ``finetune | evaluate | predict``, ddpm.finetune.cli).

Exit codes: 0 done; 1 training failed (e.g. repeated non-finite losses); 2 a bad config, flag,
file or run folder (one line on stderr naming it and why, no traceback); 130 interrupted by
Ctrl-C after writing a checkpoint.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence, get_args

from ddpm.config import DEFAULT_SAMPLER, Precision, Sampler  # torch-free: --help stays fast
from ddpm.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
from ddpm.finetune import cli as finetune_cli  # torch-free too
from ddpm.launch import add_launch_flags  # torch-free at import

# OpenMP threads that spin while they wait steal the cores from each other when other processes
# share them, which makes CPU training several times slower (bench/RESULTS.md "engine").
# Set before torch loads OpenMP (torch is imported lazily below); a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# the commands whose speed depends on the allocator: they train or sample (many tensors a step)
_TCMALLOC_COMMANDS = ("train", "sample", "finetune", "study")


class UsageError(Exception):
    """A user mistake caught by the CLI itself."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # one line instead of argparse's usage block
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_USAGE)


def _int_at_least(minimum: int):
    """An argparse type: an integer >= minimum, or a one-line error naming the value."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}")
        return value
    return parse


_positive, _nonneg = _int_at_least(1), _int_at_least(0)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ddpm", description="Pretrain, sample and export 2D/3D diffusion models.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train (or resume) a run from a JSON config")
    t.add_argument("--config", required=True, help="config JSON file")
    t.add_argument("--name", help="run folder name under experiment_path (default: the config file's stem)")
    t.add_argument("--resume", action="store_true",
                   help="require an existing checkpoint to resume from (a run folder with checkpoints "
                        "is resumed automatically anyway)")
    t.add_argument("--gpu", type=int, help="override the config's gpu (-1 = CPU)")
    t.add_argument("--threads", type=_positive,
                   help="CPU threads for torch (1 is fastest for tiny models on a busy machine)")
    add_launch_flags(t)

    s = sub.add_parser("sample", help="draw samples from a trained run")
    s.add_argument("--run", required=True, help="run folder (<experiment_path>/<run name>)")
    s.add_argument("--num", type=_positive, default=8, help="number of samples (default 8)")
    s.add_argument("--sampler", choices=[v.value for v in Sampler], default=DEFAULT_SAMPLER.value,
                   help=f"default {DEFAULT_SAMPLER.value}")
    s.add_argument("--steps", type=_positive, help="sampling steps (default: the sampler's default)")
    s.add_argument("--seed", type=_nonneg, default=0)
    s.add_argument("--out", help="output folder (default: RUN/generated)")
    s.add_argument("--checkpoint", help="a checkpoint file (default: the run's newest)")
    s.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")
    s.add_argument("--batch-size", type=_positive, help="samples per batch (default: the config's batch_size)")
    s.add_argument("--gpu", type=int, help="CUDA index (default: the run's gpu; -1 = CPU)")
    s.add_argument("--threads", type=_positive, help="CPU threads for torch")
    s.add_argument("--precision", choices=get_args(Precision), default="auto",
                   help="default auto: bf16 where this device runs it natively, else fp32")
    add_launch_flags(s)

    i = sub.add_parser("inspect", help="show what the loader will do with each file under PATH")
    i.add_argument("path")
    i.add_argument("--config", help="use this config's dataset settings (size, channels, intensity)")
    i.add_argument("--image-size", type=_positive, help="target size per side (default 64)")

    sub.add_parser("kernels", help="build (once, cached) and load the engine's native CPU kernels, "
                                   "and say whether training on a CPU will use them")

    e = sub.add_parser("export", help="write a run's EMA U-Net weights as safetensors")
    e.add_argument("--run", required=True)
    e.add_argument("--out", required=True, help="output .safetensors file")
    e.add_argument("--encoder-only", action="store_true", help="only the down path and middle block")
    e.add_argument("--checkpoint", help="a checkpoint file (default: the run's newest)")
    e.add_argument("--no-ema", action="store_true")
    finetune_cli.add_parsers(sub)  # finetune, evaluate, predict
    return p


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _config_error_line(source: str, exc: Any) -> str:
    parts = [f"{loc}: {msg}" if loc else msg for loc, msg in exc.errors]
    return _one_line(f"bad config {source}: " + "; ".join(parts))


class _ConsoleLogHandler(logging.Handler):
    """Engine warnings as single lines on stderr, written above the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(f"{record.levelname.lower()}: {_one_line(record.getMessage())}", file=sys.stderr)


def _setup_console_logging() -> None:
    logger = logging.getLogger("ddpm")
    if not any(isinstance(h, _ConsoleLogHandler) for h in logger.handlers):
        logger.addHandler(_ConsoleLogHandler(level=logging.WARNING))

    def _show(message: Any, category: Any, *_: Any, **__: Any) -> None:
        from tqdm import tqdm

        tqdm.write(f"warning: {_one_line(str(message))}", file=sys.stderr)

    warnings.showwarning = _show


# ---- commands ----------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from ddpm.config import load_config
    from ddpm.run.checkpoint import latest_checkpoint
    from ddpm.run.run_dir import run_dir_for
    from ddpm.train import run_training
    from ddpm.train.console import ConsoleCallbacks, stop_on_ctrl_c

    cfg = load_config(args.config)
    if args.gpu is not None:
        cfg = load_config({**cfg.model_dump(mode="json"), "gpu": args.gpu})
    try:
        run_dir = run_dir_for(cfg.experiment_path, args.config, args.name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.resume and latest_checkpoint(run_dir / "checkpoints") is None:
        raise UsageError(f"--resume: {run_dir} holds no checkpoint to resume from")
    from ddpm.launch import launch_if_asked, rank_exit, stopped_by_peer

    code = launch_if_asked("train", args, cfg.dataset.batch_size)
    if code is not None:
        return code
    with stop_on_ctrl_c(ConsoleCallbacks(run_dir)) as callbacks, stopped_by_peer("train"):
        result = run_training(cfg, run_dir, callbacks, resume=True)
    return rank_exit(result)


def cmd_sample(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ddpm.launch import launch_if_asked, stopped_by_peer
    from ddpm.sample import sample_run
    from ddpm.train.distributed import env_world

    code = launch_if_asked("sample", args, None)  # the batches are shared out whole
    if code is not None:
        return code
    device = None
    if args.gpu is not None:
        from ddpm.device import resolve_device
        device = resolve_device(args.gpu)
    bar = tqdm(total=None, desc="sample", unit="step", disable=None, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        with stopped_by_peer("sample"):
            files = sample_run(args.run, args.num, sampler=args.sampler, steps=args.steps, seed=args.seed,
                               out_dir=args.out, batch_size=args.batch_size, progress=progress,
                               checkpoint=args.checkpoint, use_ema=not args.no_ema, device=device,
                               precision=args.precision)
    finally:
        bar.close()
    if not env_world().is_main:  # rank 0 says what the job wrote
        return 0
    out = Path(args.out) if args.out else Path(args.run) / "generated"
    kind = "volumes (.nii.gz) with previews" if files and files[0].volume_path else "images"
    print(f"wrote {len(files)} {kind} to {out}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from ddpm.data import format_inspect_table, inspect_path

    path = Path(args.path)
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    kwargs: dict[str, Any] = {}
    if args.config:
        from ddpm.config import load_config
        cfg = load_config(args.config)
        ds = cfg.dataset
        kwargs = {"is_3d": cfg.is_3d, "image_size": ds.image_size, "image_channels": ds.image_channels,
                  "keep_aspect": ds.keep_aspect, "clip_percentiles": ds.clip_percentiles,
                  "window": ds.intensity.window if ds.intensity else None}
    if args.image_size:
        kwargs["image_size"] = args.image_size
    print(format_inspect_table(inspect_path(path, **kwargs)))
    from ddpm.data.inspect import format_labelled_summary, labelled_summary

    labelled = labelled_summary(path)
    if labelled is not None:
        print("\n" + format_labelled_summary(labelled))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ddpm.export import export_run

    out = export_run(args.run, args.out, encoder_only=args.encoder_only, checkpoint=args.checkpoint,
                     use_ema=not args.no_ema)
    print(f"wrote {'encoder-only ' if args.encoder_only else ''}weights to {out}")
    return 0


def cmd_kernels(args: argparse.Namespace) -> int:
    """Exit 0 when the kernels are built and loaded, 1 when the engine will use PyTorch ops."""
    import math
    import time

    from ddpm.nn import kernels

    t0 = time.perf_counter()
    ok = kernels.ops(timeout_s=math.inf) is not None  # at install time: wait for the build, however long
    print(f"{kernels.status()} ({time.perf_counter() - t0:.1f} s; cache entry {kernels.build_name()})")
    return 0 if ok else EXIT_FAILED


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "inspect": cmd_inspect, "export": cmd_export,
            "kernels": cmd_kernels, **finetune_cli.COMMANDS}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # what --nproc runs again in each process
    _setup_console_logging()
    from ddpm.config import ConfigError
    from ddpm.run.errors import RunError
    from ddpm.train.errors import NonFiniteLossError

    try:
        from ddpm.data import DataError
    except ImportError:  # pragma: no cover - the data package is part of the engine
        DataError = ValueError  # type: ignore[misc,assignment]
    prog = f"ddpm {args.command}"
    if getattr(args, "threads", None):
        import torch
        torch.set_num_threads(args.threads)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        source = getattr(args, "config", None) or "(run config)"
        sys.stderr.write(f"{prog}: error: {_config_error_line(source, exc)}\n")
    except (UsageError, RunError, DataError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
            PermissionError) as exc:
        sys.stderr.write(f"{prog}: error: {_one_line(exc)}\n")
    except NonFiniteLossError as exc:
        sys.stderr.write(f"{prog}: failed: {_one_line(exc)}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: aborted by a second Ctrl-C (no checkpoint written for the current step)\n")
        return EXIT_INTERRUPTED
    return EXIT_USAGE


def entry() -> None:
    """The ``ddpm`` command (and ``python -m ddpm``): the commands that train or sample run with
    tcmalloc when it is installed (``ddpm.allocator``; ``DDPM_ALLOCATOR=system`` opts out)."""
    argv = sys.argv[1:]
    if argv[:1] and argv[0] in _TCMALLOC_COMMANDS:
        from ddpm.allocator import reexec_with_tcmalloc
        reexec_with_tcmalloc(argv)
    if int(os.environ.get("WORLD_SIZE", "1")) < 2:
        try:
            sys.exit(main(argv))
        except BrokenPipeError:
            # the reader of the output left (`ddpm inspect DIR | head`): stop quietly, as shell tools
            # do; stdout goes to /dev/null so the interpreter's last flush does not raise again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(128 + signal.SIGPIPE)
    # A rank of a launched job: once its work is done and said, it leaves without the
    # interpreter's teardown, where torch.distributed's native threads can abort the process
    # ("terminate called without an active exception", SIGABRT after a clean run) and a peer
    # still finishing sees its connection reset.
    try:
        code = main(argv)
    except SystemExit as exc:  # e.g. EXIT_PEER_LOST from ddpm.launch.stopped_by_peer
        code = exc.code if isinstance(exc.code, int) else 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
