"""One process of a worker's multi-process job, and the shim that starts torchrun's agent.

``python -m worker.rank_main agent <nproc> <job dir>``: bind this process's life to the job child
(PR_SET_PDEATHSIG), then run torch's elastic agent (the engine of torchrun), which starts
``python -m worker.rank_main rank <job dir>`` ``nproc`` times. A rank binds its life to the agent the same way, so a SIGKILLed worker takes the
child, the agent and every rank with it: no orphan keeps training (and writing checkpoints) while
another worker resumes the job.

A rank loads the run spec the child wrote (``spec.pkl``), runs the job's loop
(``worker.rank_loop.train_here``: training or fine-tuning; the engine joins the group from
torchrun's environment and reports from rank 0 only), and ends with:
- rank 0: ``("done", {"status", "step"})`` on the relay (``worker.rank_relay``), exit 0;
- a failure: its one-line reason in ``rank<r>.error`` of the job dir (marked ``peer lost`` when a
  collective failed because another rank died first), exit 1.
"""
from __future__ import annotations

import logging
import os
import pickle
import sys
import threading
import time
import traceback
from pathlib import Path

from worker.rank_files import AGENT_ERROR_FILE, PEER_LOST_PREFIX, SPEC_FILE, error_file

PARENT_POLL_S = 0.5


def bind_to_parent() -> None:
    """Die with the parent: SIGKILL from the kernel (Linux), and a polling thread as fallback."""
    parent = os.getppid()
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(70)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(70)

    threading.Thread(target=watch, daemon=True, name="watch-parent").start()


def _run_agent(nproc: int, job_dir: Path) -> int:
    """torch's elastic agent (what torchrun runs) over ``nproc`` ranks on this machine; when a rank
    fails, the engine's one line for the rank that failed first goes to ``agent.error``."""
    bind_to_parent()  # the agent dies with the job child
    import uuid

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from ddpm.launch import describe_failure, first_cause

    # the agent's own log (rendezvous, the failure table) would bury the job's one line
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=uuid.uuid4().hex,
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,
                          monitor_interval=0.5, start_method="spawn")
    try:
        elastic_launch(config, sys.executable)("-u", "-m", "worker.rank_main", "rank", str(job_dir))
    except ChildFailedError as exc:
        rank, failure = first_cause(exc.failures)
        (job_dir / AGENT_ERROR_FILE).write_text(describe_failure(rank, failure))
        return 1
    return 0


def _run_rank(job_dir: Path) -> int:
    bind_to_parent()
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s rank{rank} %(name)s: %(message)s")
    try:
        spec = pickle.loads((job_dir / SPEC_FILE).read_bytes())
        from ddpm.train.callbacks import TrainCallbacks
        from worker.rank_loop import train_here

        conn = None
        if rank == 0:
            from worker.rank_relay import RelayStop, connect_rank0
            from worker.runner import _make_callbacks

            conn = connect_rank0()
            callbacks = _make_callbacks(conn, RelayStop(conn))
        else:
            callbacks = TrainCallbacks()  # the engine reduces a non-zero rank's callbacks to should_stop
        result = train_here(spec, callbacks)
        if conn is not None:
            callbacks.flush_progress()
            callbacks.send("done", {"status": result.status, "step": int(result.step)})
            conn.close()
        return 0
    except BaseException as exc:  # noqa: BLE001 - the child names the failing rank with this line
        from worker.failures import reason_for

        traceback.print_exc()
        from ddpm.launch import peer_lost

        if peer_lost(exc):
            from ddpm.exit_codes import EXIT_PEER_LOST

            error_file(job_dir, rank).write_text(PEER_LOST_PREFIX + " ".join(str(exc).split())[:160])
            return EXIT_PEER_LOST  # the agent names the rank that failed first, not this one
        try:
            data_dir = str(spec.paths.data_dir)  # type: ignore[possibly-undefined]
        except NameError:
            data_dir = ""
        error_file(job_dir, rank).write_text(reason_for(exc, data_dir))
        return 1


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "agent":
        return _run_agent(int(argv[1]), Path(argv[2]))
    if len(argv) == 2 and argv[0] == "rank":
        code = _run_rank(Path(argv[1]))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # skip interpreter teardown (data-loader threads can hang it)
    sys.stderr.write("usage: python -m worker.rank_main agent NPROC JOB_DIR | rank JOB_DIR\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
