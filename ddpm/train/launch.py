"""``ddpm train --nproc N``: N processes of this command on this machine, run by torch's elastic
agent (the engine torchrun uses; no scheduler of our own), and the one line that says why a job
of several processes failed.

Each process is ``python -m ddpm <the same arguments>`` without ``--nproc``/``--max-restarts``;
it finds its rank in the environment the agent sets (``ddpm.train.distributed``). With
``--max-restarts R`` the agent restarts the whole group up to R times after a failure, and the
new group resumes from the run's newest checkpoint like any rerun of the command.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ddpm.exit_codes import EXIT_FAILED, EXIT_PEER_LOST

LAUNCH_FLAGS = ("--nproc", "--max-restarts")  # the parent's own flags, not passed to the ranks


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
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    # N processes on one machine share its cores (torchrun sets 1 thread; a user's setting wins)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    # the agent's own log (rendezvous, the failure table) would bury the one line below
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=uuid.uuid4().hex,
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=max_restarts,
                          monitor_interval=0.2, start_method="spawn")
    try:
        elastic_launch(config, sys.executable)("-m", "ddpm", *rank_argv(argv))
    except ChildFailedError as exc:
        rank, failure = first_cause(exc.failures)
        restarts = f" after {max_restarts} restart(s)" if max_restarts else ""
        sys.stderr.write(f"ddpm {command}: failed: {describe_failure(rank, failure)}{restarts}; "
                         "the job stopped (the run resumes from its newest checkpoint when started again)\n")
        code = failure.exitcode
        return code if code is not None and code > 0 and code != EXIT_PEER_LOST else EXIT_FAILED
    return 0


@contextmanager
def stopped_by_peer(command: str) -> Iterator[None]:
    """In a rank of a job: a collective that fails because another process died ends this one
    with one line and EXIT_PEER_LOST (the launcher names the process that failed first)."""
    import torch.distributed as tdist

    try:
        yield
    except (tdist.DistError, RuntimeError) as exc:
        # gloo reports a dead peer as a plain RuntimeError ("Connection closed by peer")
        # (the trainer has already left the group: ask the environment whether this is a job of several)
        if int(os.environ.get("WORLD_SIZE", "1")) < 2 or not (isinstance(exc, tdist.DistError)
                                                              or "by peer" in str(exc)):
            raise
        reason = " ".join(str(exc).split())[:160]
        sys.stderr.write(f"ddpm {command}: rank {os.environ.get('RANK', '?')} stopped: another process "
                         f"of the job failed ({reason})\n")
        raise SystemExit(EXIT_PEER_LOST) from None
