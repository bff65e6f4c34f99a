"""The training loop of a train or fine-tune job, as one process or as a group of ranks.

Both kinds train with the engine's loop (``ddpm.train.run_training``, ``ddpm.finetune.run_finetune``),
which joins torchrun's group from the environment and reports from rank 0 only; so the job child
and each rank of ``worker.rank_group`` run the same ``train_here``, and ``run_loop`` chooses
between them by the job's process count. What follows the loop (a train job's export, a fine-tune
job's evaluation) stays in the job child, one process.
"""
from __future__ import annotations

from typing import Any, Union

from backend.jobs import JobKind
from backend.run_spec import FinetuneRunSpec, TrainRunSpec

LoopSpec = Union[TrainRunSpec, FinetuneRunSpec]


def train_here(spec: LoopSpec, callbacks: Any) -> Any:
    """The job's loop in this process (the whole job, or one rank of it); the engine's TrainResult."""
    if spec.kind == JobKind.finetune:
        from ddpm.finetune.trainer import run_finetune
        from worker.finetune_run import FinetuneCallbacks

        return run_finetune(spec.params.config, spec.paths.run_dir, FinetuneCallbacks(callbacks), resume=True)
    from ddpm.train import run_training

    return run_training(spec.config, spec.paths.run_dir, callbacks, resume=True)


def run_loop(spec: LoopSpec, cb: Any) -> Any:
    """The job's loop with ``cb`` (the child's PipeCallbacks) receiving rank 0's reports: here, or
    as ``spec.nproc`` processes under torchrun's agent. A result with ``status`` and ``step``."""
    if spec.nproc <= 1:
        return train_here(spec, cb)
    from worker.rank_group import RankGroupError, run_rank_group

    try:
        return run_rank_group(spec, cb)
    except RankGroupError as exc:
        raise RuntimeError(str(exc)) from None  # the one line is the job's error as it stands
