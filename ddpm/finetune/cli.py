"""``ddpm finetune | evaluate | predict | study``: the subcommands of fine-tuning, registered by
``ddpm.cli`` (``add_parsers`` and ``COMMANDS``). Torch-free at import, so ``ddpm --help`` stays
fast. Bad input raises the engine's errors (ConfigError, RunError, DataError), which ``ddpm.cli``
prints as one line with exit code 2, as for ``ddpm train``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from ddpm.launch import add_launch_flags
from ddpm.run.errors import RunError


def _budgets(text: str) -> list[int]:
    """An argparse type: comma-separated label budgets, each a whole number >= 1."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give label budgets >= 1, e.g. 1,2,4,8")
    return sorted(set(values))


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number >= 1")
    return int(text)


def add_parsers(sub: Any) -> None:
    """Add the fine-tuning subcommands to ``ddpm``'s subparsers."""
    f = sub.add_parser("finetune", help="fine-tune a pretrained run (or train from scratch) as a "
                                        "segmenter on a labelled folder")
    f.add_argument("--config", required=True, help="fine-tune config JSON file")
    f.add_argument("--name", help="run folder name under experiment_path (default: the config file's stem)")
    f.add_argument("--gpu", type=int, help="override the config's gpu (-1 = CPU)")
    f.add_argument("--threads", type=int, help="CPU threads for torch")
    add_launch_flags(f)

    for name, text in (("evaluate", "Dice of a fine-tuned run's predictions on a labelled folder"),
                       ("predict", "write a fine-tuned run's label map of every image in a folder")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--run", required=True, help="fine-tune run folder")
        p.add_argument("--data", required=True, help="labelled folder" if name == "evaluate"
                       else "folder of images (or a labelled folder: its images)")
        p.add_argument("--out", required=True, help="evaluation JSON file" if name == "evaluate"
                       else "output folder for the label maps")
        p.add_argument("--checkpoint", help="a checkpoint file (default: the run's newest)")
        p.add_argument("--gpu", type=int, default=-1, help="CUDA index (default -1 = CPU)")
        p.add_argument("--threads", type=int, help="CPU threads for torch")

    st = sub.add_parser("study", help="fine-tune pretrained and scratch at several label budgets and "
                                      "seeds, evaluate both on held-out cases: study.json and study.png")
    st.add_argument("--config", required=True, help="fine-tune config JSON file (pretrained set)")
    st.add_argument("--labels", type=_budgets, default=[1, 2, 4, 8],
                    help="labelled cases per run, comma-separated (default 1,2,4,8)")
    st.add_argument("--seeds", type=_count, default=3,
                    help="seeds per budget: the config's seed and the next ones (default 3)")
    st.add_argument("--eval", required=True, help="held-out labelled folder to evaluate every run on")
    st.add_argument("--out", help="study folder (default: <experiment_path>/<config stem>-study); "
                                  "a rerun skips its finished runs")
    st.add_argument("--gpu", type=int, help="override the config's gpu (-1 = CPU)")
    st.add_argument("--threads", type=int, help="CPU threads for torch")


def cmd_finetune(args: argparse.Namespace) -> int:
    from ddpm.config import load_finetune_config
    from ddpm.finetune.trainer import run_finetune
    from ddpm.run.run_dir import run_dir_for
    from ddpm.launch import launch_if_asked, rank_exit, stopped_by_peer
    from ddpm.train.console import ConsoleCallbacks, stop_on_ctrl_c

    cfg = load_finetune_config(args.config)
    if args.gpu is not None:
        cfg = load_finetune_config({**cfg.model_dump(mode="json", exclude_unset=True), "gpu": args.gpu})
    try:
        run_dir = run_dir_for(cfg.experiment_path, args.config, args.name)
    except ValueError as exc:
        raise RunError(str(exc)) from None
    code = launch_if_asked("finetune", args, cfg.dataset.batch_size)
    if code is not None:
        return code
    with stop_on_ctrl_c(ConsoleCallbacks(run_dir)) as callbacks, stopped_by_peer("finetune"):
        result = run_finetune(cfg, run_dir, callbacks, resume=True)
    return rank_exit(result)


def cmd_study(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from ddpm.config import load_finetune_config
    from ddpm.finetune.study import StudyProgress, format_study_table, run_study
    from ddpm.run.run_dir import run_dir_for
    from ddpm.exit_codes import EXIT_INTERRUPTED
    from ddpm.train.console import ConsoleCallbacks, stop_on_ctrl_c

    cfg = load_finetune_config(args.config)
    if args.gpu is not None:
        cfg = load_finetune_config({**cfg.model_dump(mode="json", exclude_unset=True), "gpu": args.gpu})
    out = Path(args.out) if args.out else run_dir_for(cfg.experiment_path, f"{Path(args.config).stem}-study")

    with stop_on_ctrl_c(ConsoleCallbacks(out)) as callbacks:
        def progress(event: StudyProgress) -> None:
            run = event.run
            head = f"[{event.index}/{event.total}] {run.name}"
            if event.phase == "training":
                callbacks.run_dir = run.run_dir  # the bar's start line names the run
            elif event.phase != "evaluating":
                state = "done before" if event.phase == "skipped" else "evaluated"
                tqdm.write(f"{head}: {state}, Dice {event.mean_dice:.4f}")

        result = run_study(cfg, args.labels, args.seeds, args.eval, out, callbacks, progress)
    print(format_study_table(result.study))
    if result.status == "stopped":
        sys.stderr.write(f"study interrupted ({len(result.study['runs'])} runs finished); run the same "
                         "command to continue\n")
        return EXIT_INTERRUPTED
    print(f"wrote {result.path} and {result.plot}")
    return 0


def _load(args: argparse.Namespace) -> Any:
    from ddpm.device import resolve_device
    from ddpm.finetune.inference import load_finetuned

    return load_finetuned(args.run, args.checkpoint, resolve_device(args.gpu))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ddpm.finetune.inference import evaluate_folder, format_evaluation, write_evaluation

    result = evaluate_folder(_load(args), args.data)
    print(format_evaluation(result))
    print(f"wrote {write_evaluation(result, args.out)}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ddpm.finetune.inference import predict_folder

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out}: is a file; give a folder")
    files = predict_folder(_load(args), args.data, out)
    print(f"wrote {len(files)} label maps to {out}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "finetune": cmd_finetune, "evaluate": cmd_evaluate, "predict": cmd_predict, "study": cmd_study}
