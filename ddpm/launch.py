"""``ddpm train|finetune|sample --nproc N``: N processes of the command on this machine, run by torch's
elastic agent (the engine torchrun uses; no scheduler of our own), and the one line that says why
a job of several processes failed. Torch-free at import (``ddpm --help`` stays fast).

Each process is ``python -m ddpm <the same arguments>`` without ``--nproc``/``--max-restarts``;
it finds its rank in the environment the agent sets (``ddpm.train.distributed``). With
``--max-restarts R`` the agent restarts the whole group up to R times after a failure, and the
new group resumes from the run's newest checkpoint like any rerun of the command.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Callable, Optional

from ddpm.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_PEER_LOST
from ddpm.run.errors import RunError

LAUNCH_FLAGS = ("--nproc", "--max-restarts")  # the parent's own flags, not passed to the ranks
# after Ctrl-C the agent waits this long for the ranks (rank 0 writes a checkpoint) before SIGKILL
SHUTDOWN_WAIT_S = 300


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.strip().isdigit() or int(text) < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be an integer of at least {minimum}")
        return int(text)
    return parse


def add_launch_flags(parser: argparse.ArgumentParser) -> None:
    """``--nproc`` and ``--max-restarts`` for a command that trains or samples."""
    parser.add_argument("--nproc", type=_count(1),
                        help="train with N processes on this machine (gloo on the CPU, one GPU each with "
                             "NCCL); dataset.batch_size stays the global batch, split across them")
    parser.add_argument("--max-restarts", type=_count(0), default=0,
                        help="restart the processes up to R times after a failure; they resume from the "
                             "newest checkpoint (default 0)")


def launch_if_asked(command: str, args: argparse.Namespace, batch_size: Optional[int]) -> Optional[int]:
    """With ``--nproc``/``--max-restarts``: run the job's processes and return its exit code;
    without: None (this process works, alone or as a rank torchrun started). ``batch_size``: the
    global batch a training job splits across its processes (None: sampling, whole batches)."""
    from ddpm.train import distributed as dd

    if args.nproc is None and not args.max_restarts:
        return None
    if dd.env_world().active:
        raise RunError(f"--nproc/--max-restarts: this process is already one of a launched job "
                         f"(WORLD_SIZE={dd.env_world().world_size}); the launcher sets the process count")
    if batch_size is not None:
        dd.split_batch(batch_size, args.nproc or 1)  # before any process starts
    return run_group(command, args.argv, args.nproc or 1, args.max_restarts)


def rank_exit(result: Any) -> int:
    """How a rank's training ended as an exit code; rank 0 alone prints it."""
    from ddpm.train.console import report_result
    from ddpm.train.distributed import env_world

    if env_world().is_main:
        return report_result(result)
    return 0 if result.status == "completed" else EXIT_INTERRUPTED


def rank_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` without the launcher's flags (``--nproc 2`` or ``--nproc=2``)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in LAUNCH_FLAGS:
            skip = True
        elif not arg.startswith(tuple(f"{f}=" for f in LAUNCH_FLAGS)):
            out.append(arg)
    return out


def describe_failure(rank: int, failure: Any) -> str:
    """One line for a failed rank: its exit code or the signal that ended it."""
    code = failure.exitcode
    how = (f"was killed by {failure.signal_name()}" if code is not None and code < 0
           else f"exited with code {code}")
    return f"rank {rank} (pid {failure.pid}) {how}"


def first_cause(failures: dict[int, Any]) -> tuple[int, Any]:
    """The rank whose failure ended the job. The others, left without a peer, exit with
    EXIT_PEER_LOST or are ended by the agent (SIGTERM); among the rest the lowest rank."""
    causes = {r: f for r, f in failures.items() if f.exitcode not in (EXIT_PEER_LOST, -signal.SIGTERM)} or failures
    rank = min(causes)
    return rank, causes[rank]


def run_group(command: str, argv: Sequence[str], nproc: int, max_restarts: int) -> int:
    """Run ``python -m ddpm <argv>`` as ``nproc`` processes here; the exit code of the job."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    # N processes on one machine share its cores (torchrun sets 1 thread; a user's setting wins)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    # a rank that dies in native code (a signal, an abort in gloo) leaves its Python stack in the
    # log: the only trace of where it was when the failure line names it
    os.environ.setdefault("PYTHONFAULTHANDLER", "1")
    # the agent's own log (rendezvous, the failure table) would bury the one line below
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    # Ctrl-C: the agent passes SIGINT to the ranks (their own sessions), which agree to stop;
    # rank 0 writes a checkpoint within the agent's shutdown wait, then the agent raises here
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=uuid.uuid4().hex,
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=max_restarts,
                          monitor_interval=0.2, start_method="spawn", shutdown_timeout=SHUTDOWN_WAIT_S)
    try:
        elastic_launch(config, sys.executable)("-m", "ddpm", *rank_argv(argv))
    except SignalException as exc:
        if exc.sigval != signal.SIGINT:
            sys.stderr.write(f"ddpm {command}: stopped by {exc.sigval.name}: the processes were ended "
                             "(the run resumes from its newest checkpoint when started again)\n")
            return EXIT_FAILED
        return EXIT_INTERRUPTED
    except ChildFailedError as exc:
        if all(f.exitcode == EXIT_INTERRUPTED for f in exc.failures.values()):
            # a stop that reached the ranks but not this agent (a SIGINT to one rank): they
            # agreed it, rank 0 checkpointed and said so; nothing failed
            return EXIT_INTERRUPTED
        rank, failure = first_cause(exc.failures)
        restarts = f" after {max_restarts} restart(s)" if max_restarts else ""
        sys.stderr.write(f"ddpm {command}: failed: {describe_failure(rank, failure)}{restarts}; "
                         "the job stopped (the run resumes from its newest checkpoint when started again)\n")
        code = failure.exitcode
        return code if code is not None and code > 0 and code != EXIT_PEER_LOST else EXIT_FAILED
    return 0


def peer_lost(exc: BaseException) -> bool:
    """Whether ``exc``, raised in a rank of a job of several processes, says that another process
    of the job died (that process is the cause to name, not this one)."""
    import torch.distributed as tdist

    if int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return False
    # gloo reports a dead peer as a plain RuntimeError ("Connection closed/reset by peer")
    return isinstance(exc, tdist.DistError) or (isinstance(exc, RuntimeError) and "by peer" in str(exc))


@contextmanager
def stopped_by_peer(command: str) -> Iterator[None]:
    """In a rank of a job: a collective that fails because another process died ends this one
    with one line and EXIT_PEER_LOST (the launcher names the process that failed first)."""
    try:
        yield
    except RuntimeError as exc:  # DistError is a RuntimeError too
        if not peer_lost(exc):
            raise
        reason = " ".join(str(exc).split())[:160]
        sys.stderr.write(f"ddpm {command}: rank {os.environ.get('RANK', '?')} stopped: another process "
                         f"of the job failed ({reason})\n")
        raise SystemExit(EXIT_PEER_LOST) from None
