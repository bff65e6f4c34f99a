"""A label-efficiency study: does pretraining pay, and at how many labelled cases?

``run_study`` fine-tunes two arms at every label budget and seed, with the same iterations:
``pretrained`` (the config's pretrained U-Net) and ``scratch`` (the same architecture from
random weights: ``pretrained`` null, ``model.unet`` the pretrained run's, every weight trained).
Both arms of one (budget, seed) draw the same labelled cases and the same held-out split. Each
run is evaluated on a separate labelled folder. The study folder holds:

  study.json    the plan, per budget the mean and sd of Dice of each arm, and every run
  study.png     Dice against labelled cases, both arms with their spread
  runs/<arm>-n<budget>-s<seed>/   each run's own fine-tune run folder, with its eval.json

A rerun skips the runs that finished (final checkpoint and eval.json present) and resumes an
interrupted one from its checkpoint; budgets and seeds may change between runs (a study can be
extended), the config and evaluation folder may not.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Sequence, Union

import numpy as np

from ddpm.config import ConfigError, FinetuneConfig, load_finetune_config
from ddpm.data.datasets import split_files
from ddpm.run.atomic import atomic_write_text
from ddpm.run.checkpoint import latest_checkpoint
from ddpm.run.errors import RunError
from ddpm.run.run_dir import RunPaths
from ddpm.train.callbacks import TrainCallbacks

from .labelled import labelled_pairs
from .study_files import EVAL_FILE, PLOT_FILE, STUDY_FILE

ARMS = ("scratch", "pretrained")
Arm = Literal["scratch", "pretrained"]
# keys that may differ between a study's runs without changing what they measure
_FREE_KEYS = ("gpu",)


@dataclass(frozen=True)
class StudyRun:
    """One fine-tune run of the plan."""

    arm: Arm
    labelled_cases: int
    seed: int
    run_dir: Path

    @property
    def name(self) -> str:
        return self.run_dir.name


@dataclass(frozen=True)
class StudyProgress:
    """A study event: ``phase`` of ``run`` ("skipped": already finished; "training";
    "evaluating"; "finished": trained and evaluated), the ``index``-th (from 1) of ``total``
    runs; ``done`` runs are finished."""

    index: int
    done: int
    total: int
    run: StudyRun
    phase: Literal["skipped", "training", "evaluating", "finished"]
    mean_dice: Optional[float] = None


@dataclass(frozen=True)
class StudyResult:
    status: Literal["completed", "stopped"]
    study: dict[str, Any]  # what study.json holds
    path: Path             # study.json
    plot: Path             # study.png


def run_name(arm: str, labelled_cases: int, seed: int) -> str:
    return f"{arm}-n{labelled_cases}-s{seed}"


def plan_runs(out_dir: Path, budgets: Sequence[int], seeds: Sequence[int]) -> list[StudyRun]:
    """Every run, budget by budget, seed by seed, scratch before pretrained."""
    return [StudyRun(arm, b, s, out_dir / "runs" / run_name(arm, b, s))  # type: ignore[arg-type]
            for b in budgets for s in seeds for arm in ARMS]


def arm_config(base: FinetuneConfig, arm: str, labelled_cases: int, seed: int) -> FinetuneConfig:
    """The run config of one arm from the resolved pretrained config ``base``. Scratch keeps
    the architecture and input keys but no weights, and trains every weight (a frozen random
    encoder is no baseline anyone would use)."""
    raw = base.model_dump(mode="json")
    raw["seed"] = seed
    raw["dataset"]["labelled_cases"] = labelled_cases
    if arm == "scratch":
        raw["pretrained"] = None
        raw["model"]["freeze"] = "none"
    return load_finetune_config(raw)


def is_finished(run: StudyRun, iterations: int) -> bool:
    ckpt = latest_checkpoint(RunPaths(run.run_dir).checkpoints)
    return (ckpt is not None and ckpt.final and ckpt.step == iterations
            and (run.run_dir / EVAL_FILE).is_file())


def summarise(values: Sequence[float]) -> dict[str, Any]:
    """mean, sample sd (null for fewer than two runs) and n of some Dice values."""
    n = len(values)
    return {"mean": float(np.mean(values)) if n else None,
            "sd": float(np.std(values, ddof=1)) if n > 1 else None, "n": n}


def build_study(spec: dict[str, Any], records: list[dict[str, Any]], complete: bool) -> dict[str, Any]:
    """study.json: the spec, one summary row per budget, every finished run."""
    rows = []
    for b in spec["budgets"]:
        row: dict[str, Any] = {"labelled_cases": b}
        for arm in ARMS:
            row[arm] = summarise([r["mean_dice"] for r in records if r["arm"] == arm and r["labelled_cases"] == b])
        both = row["pretrained"]["mean"], row["scratch"]["mean"]
        row["gain"] = None if None in both else both[0] - both[1]
        rows.append(row)
    return {**spec, "complete": complete, "summary": rows, "runs": records}


def format_study_table(study: dict[str, Any]) -> str:
    """The summary as a text table: budget, each arm's mean ± sd, gain (Dice points)."""
    def cell(s: dict[str, Any]) -> str:
        if s["mean"] is None:
            return "-"
        return f"{s['mean']:.3f} ± {s['sd']:.3f}" if s["sd"] is not None else f"{s['mean']:.3f}"

    lines = [f"{'labelled':>8}  {'scratch':>15}  {'pretrained':>15}  {'gain':>7}"]
    for row in study["summary"]:
        gain = "-" if row["gain"] is None else f"{100 * row['gain']:+.1f}"
        lines.append(f"{row['labelled_cases']:>8}  {cell(row['scratch']):>15}  {cell(row['pretrained']):>15}  {gain:>7}")
    return "\n".join(lines + ["(mean ± sd of foreground Dice over seeds; gain in Dice points)"])


def _differences(old: Any, new: Any, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new), key=str)
                for d in _differences(old.get(k), new.get(k), f"{path}.{k}" if path else str(k))]
    return [] if old == new else [f"{path} {old!r} -> {new!r}"]


def _check_same_study(path: Path, spec: dict[str, Any]) -> None:
    """A study folder measures one config on one evaluation folder; RunError otherwise."""
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: unreadable ({exc}); remove it or give another --out") from None
    diffs = _differences({k: old.get(k) for k in ("config", "eval_data")},
                         {k: spec[k] for k in ("config", "eval_data")})
    diffs = [d for d in diffs if d.split(" ")[0].removeprefix("config.") not in _FREE_KEYS]
    if diffs:
        raise RunError(f"{path.parent}: holds a study of another config or evaluation folder "
                       f"({'; '.join(diffs[:3])}); give another --out")


def _check_budgets(cfg: FinetuneConfig, budgets: Sequence[int], seeds: Sequence[int]) -> None:
    """Every budget fits the training split of every seed, and the labelled folder is sound."""
    pairs = labelled_pairs(cfg.dataset.path, cfg.task.num_classes)
    root = Path(cfg.dataset.path)
    for seed in seeds:
        pool = len(split_files([p.image for p in pairs], cfg.dataset.val_fraction, seed, root)[0])
        if max(budgets) > pool:
            raise RunError(f"--labels {max(budgets)}: more than the {pool} labelled cases of the training "
                           f"split of {root} (seed {seed}, dataset.val_fraction {cfg.dataset.val_fraction})")


def _evaluate(run: StudyRun, gpu: int, eval_data: Path) -> dict[str, Any]:
    from ddpm.device import resolve_device

    from .inference import evaluate_folder, load_finetuned, write_evaluation

    result = evaluate_folder(load_finetuned(run.run_dir, device=resolve_device(gpu)), eval_data)
    write_evaluation(result, run.run_dir / EVAL_FILE)
    return result


def _record(run: StudyRun, out_dir: Path, evaluation: dict[str, Any], iterations: int) -> dict[str, Any]:
    return {"arm": run.arm, "labelled_cases": run.labelled_cases, "seed": run.seed, "iterations": iterations,
            "run": run.run_dir.relative_to(out_dir).as_posix(),
            "eval": (run.run_dir / EVAL_FILE).relative_to(out_dir).as_posix(),
            "mean_dice": evaluation["mean_dice"], "per_class": evaluation["per_class"]}


def run_study(cfg: FinetuneConfig, budgets: Sequence[int], seeds: Union[int, Sequence[int]],
              eval_data: Union[str, Path], out_dir: Union[str, Path],
              callbacks: Optional[TrainCallbacks] = None,
              progress: Optional[Callable[[StudyProgress], None]] = None) -> StudyResult:
    """Run (or continue) the study of ``cfg`` (its ``pretrained`` set) at label ``budgets``;
    ``seeds`` is a count (cfg.seed, cfg.seed + 1, ...) or the seeds themselves. ``callbacks``
    watch every training run (``should_stop`` also stops the study between runs);
    ``progress`` hears of each run's phases."""
    from .trainer import FinetuneTrainer, resolve

    if cfg.pretrained is None:
        raise ConfigError([("pretrained", "a study compares a pretrained run with scratch; set pretrained "
                                          "(the scratch arm uses its architecture)")])
    budgets = sorted(set(int(b) for b in budgets))
    seed_list = [cfg.seed + i for i in range(seeds)] if isinstance(seeds, int) else list(seeds)
    if not budgets or min(budgets) < 1 or not seed_list:
        raise RunError("a study needs label budgets >= 1 and at least one seed")
    out, eval_data = Path(out_dir), Path(eval_data)
    base, source = resolve(cfg)
    _check_budgets(base, budgets, seed_list)
    labelled_pairs(eval_data, base.task.num_classes)  # a bad evaluation folder fails now, not after training
    spec = {"config": base.model_dump(mode="json"), "eval_data": str(eval_data.resolve()),
            "budgets": budgets, "seeds": seed_list, "iterations": base.model.iterations, "arms": list(ARMS)}
    study_path = out / STUDY_FILE
    _check_same_study(study_path, spec)
    out.mkdir(parents=True, exist_ok=True)

    from .study_plot import draw_study_plot

    def write(records: list[dict[str, Any]], complete: bool) -> dict[str, Any]:
        study = build_study(spec, records, complete)
        atomic_write_text(study_path, json.dumps(study, indent=2) + "\n")
        draw_study_plot(study, out / PLOT_FILE)
        return study

    plan = plan_runs(out, budgets, seed_list)
    iterations = base.model.iterations
    finished = {run: json.loads((run.run_dir / EVAL_FILE).read_text())
                for run in plan if is_finished(run, iterations)}
    records = [_record(run, out, finished[run], iterations) for run in plan if run in finished]
    study = write(records, complete=len(finished) == len(plan))
    tell = progress or (lambda event: None)
    for index, run in enumerate(plan, start=1):
        if run in finished:
            tell(StudyProgress(index, len(records), len(plan), run, "skipped", finished[run]["mean_dice"]))
            continue
        if callbacks is not None and callbacks.should_stop():
            return StudyResult("stopped", study, study_path, out / PLOT_FILE)
        tell(StudyProgress(index, len(records), len(plan), run, "training"))
        run_cfg = arm_config(base, run.arm, run.labelled_cases, run.seed)
        result = FinetuneTrainer(run_cfg, run.run_dir, callbacks,
                                 source if run.arm == "pretrained" else None).run(resume=True)
        if result.status == "stopped":
            return StudyResult("stopped", study, study_path, out / PLOT_FILE)
        tell(StudyProgress(index, len(records), len(plan), run, "evaluating"))
        evaluation = _evaluate(run, base.gpu, eval_data)
        records.append(_record(run, out, evaluation, iterations))
        records.sort(key=lambda r: (r["labelled_cases"], r["seed"], ARMS.index(r["arm"])))
        study = write(records, complete=len(records) == len(plan))
        tell(StudyProgress(index, len(records), len(plan), run, "finished", evaluation["mean_dice"]))
    return StudyResult("completed", study, study_path, out / PLOT_FILE)
