"""A train or fine-tune job of several processes, run from the worker's job child with torchrun.

The job child is itself a process the supervisor spawned; it starts torchrun's agent as a
SUBPROCESS in its own session (``worker.rank_main agent``: torch's elastic agent, what torchrun runs), relays rank 0's reports to the
supervisor's pipe unchanged (``worker.rank_relay``), passes a stop request on to rank 0, and
kills the agent's session on every way out. The agent and each rank die with their parent
(PR_SET_PDEATHSIG), so a cancel that times out or a SIGKILLed worker (the supervisor or the
kernel kills the child) ends the whole job too; the lease and the re-queue work as for one process,
and the next worker resumes from the newest checkpoint (rank 0 picks it for every rank).

Every wait has a deadline or a liveness check: rank 0 must connect while the agent lives (and
within ``CONNECT_TIMEOUT_S``), and after rank 0 hangs up the agent gets ``EXIT_TIMEOUT_S`` to end.
"""
from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from backend.run_spec import FinetuneRunSpec, TrainRunSpec
from worker.rank_files import AGENT_ERROR_FILE, PEER_LOST_PREFIX, SPEC_FILE, error_file
from worker.rank_relay import STOP, RelayListener

log = logging.getLogger("worker.rank_group")

CONNECT_TIMEOUT_S = 1800.0  # ranks import torch and the engine, then rendezvous; kernels may build
EXIT_TIMEOUT_S = 60.0
POLL_S = 0.2
REPO_ROOT = Path(__file__).resolve().parents[1]


class RankGroupError(RuntimeError):
    """The job's one-line reason: which rank failed and why."""


@dataclass(frozen=True)
class GroupResult:
    status: str  # the engine's TrainResult.status of rank 0: completed / stopped
    step: int


def _environment(relay: RelayListener, nproc: int) -> dict[str, str]:
    env = {**os.environ, **relay.env()}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    # N processes share this machine's cores (torchrun would set 1 thread; a user's setting wins)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    return env


def _kill_session(agent: subprocess.Popen) -> None:
    try:
        os.killpg(agent.pid, signal.SIGKILL)  # the agent's session; ranks die with the agent
    except (ProcessLookupError, PermissionError):
        pass
    try:
        agent.wait(10)
    except subprocess.TimeoutExpired:
        log.warning("torchrun agent pid %s did not exit after SIGKILL", agent.pid)


def failure_reason(job_dir: Path, nproc: int, agent_code: Optional[int]) -> str:
    """One line naming the rank that failed first: the first rank with its own reason (an engine
    error), else the agent's line for the rank that ended first (killed by a signal, an exit code)."""
    for rank in range(nproc):
        path = error_file(job_dir, rank)
        text = path.read_text().strip() if path.exists() else ""
        if text and not text.startswith(PEER_LOST_PREFIX):
            return f"rank {rank} of {nproc} failed: {text}"
    agent = job_dir / AGENT_ERROR_FILE
    if agent.exists():
        line = agent.read_text().strip()
        hint = (" (most often the system's out-of-memory killer: lower dataset.batch_size or "
                "dataset.image_size)") if "SIGKILL" in line else ""
        return f"{line} (one of {nproc} processes){hint}; the other processes stopped with it"
    return f"the {nproc} training processes ended with exit code {agent_code}; see the job log"


def run_rank_group(spec: Union[TrainRunSpec, FinetuneRunSpec], cb: Any) -> GroupResult:
    """Run ``spec``'s loop (``worker.rank_loop.train_here``) as ``spec.nproc`` processes; rank 0's
    reports reach ``cb`` (the child's PipeCallbacks), and its ``should_stop`` is passed on to rank 0.
    Raises RankGroupError when the job failed."""
    with tempfile.TemporaryDirectory(prefix=f"ddpm-job{spec.job_id}-ranks-") as tmp:
        job_dir = Path(tmp)
        (job_dir / SPEC_FILE).write_bytes(pickle.dumps(spec))
        relay = RelayListener()
        agent = subprocess.Popen([sys.executable, "-m", "worker.rank_main", "agent", str(spec.nproc), str(job_dir)],
                                 env=_environment(relay, spec.nproc), cwd=str(REPO_ROOT), start_new_session=True,
                                 stdin=subprocess.DEVNULL)
        log.info("job %s: torchrun agent pid %s runs %s processes", spec.job_id, agent.pid, spec.nproc)
        try:
            return _supervise(spec, cb, relay, agent, job_dir)
        finally:
            relay.close()
            _kill_session(agent)


def _supervise(spec: Union[TrainRunSpec, FinetuneRunSpec], cb: Any, relay: RelayListener,
               agent: subprocess.Popen, job_dir: Path) -> GroupResult:
    conn = None
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while conn is None:  # rank 0 connects once it has imported the engine
        conn = relay.wait(POLL_S)
        if conn is None and agent.poll() is not None:
            raise RankGroupError(failure_reason(job_dir, spec.nproc, agent.returncode))
        if conn is None and time.monotonic() > deadline:
            raise RankGroupError(f"rank 0 did not start within {CONNECT_TIMEOUT_S:g}s; see the job log")
    done: Optional[dict] = None
    stop_sent = False
    hung_up_at: Optional[float] = None

    def drain(wait_s: float) -> None:
        nonlocal done, hung_up_at
        if hung_up_at is not None:
            time.sleep(wait_s)
            return
        try:
            while conn.poll(wait_s):
                wait_s = 0  # drain what is there, then back to the stop and liveness checks
                kind, payload = conn.recv()
                if kind == "done":
                    done = payload
                else:
                    cb.send(kind, payload)  # already plain: PipeCallbacks in rank 0 made it so
        except (EOFError, OSError):
            hung_up_at = time.monotonic()
            conn.close()

    while True:
        drain(POLL_S)
        if not stop_sent and hung_up_at is None and cb.should_stop():
            try:
                conn.send((STOP, {}))
            except OSError:
                pass
            stop_sent = True
        code = agent.poll()
        if code is not None:
            drain(0)  # what rank 0 sent just before it ended
            break
        if hung_up_at is not None and time.monotonic() - hung_up_at > EXIT_TIMEOUT_S:
            log.warning("job %s: the processes did not end %gs after rank 0 did; killing them",
                        spec.job_id, EXIT_TIMEOUT_S)
            break
    if done is not None and code == 0:
        return GroupResult(str(done.get("status")), int(done.get("step") or 0))
    raise RankGroupError(failure_reason(job_dir, spec.nproc, code))
