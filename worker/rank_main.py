"""One process of a worker's multi-process job, and the shim that starts torchrun's agent.

``python -m worker.rank_main agent <nproc> <job dir>``: bind this process's life to the job child
(PR_SET_PDEATHSIG), then exec torchrun, which runs ``python -m worker.rank_main rank <job dir>``
``nproc`` times. A rank binds its life to the agent the same way, so a SIGKILLed worker takes the
child, the agent and every rank with it: no orphan keeps training (and writing checkpoints) while
another worker resumes the job.

A rank loads the run spec the child wrote (``spec.pkl``), trains with the engine (which joins the
group from torchrun's environment and reports from rank 0 only), and ends with:
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

from worker.rank_files import PEER_LOST_PREFIX, SPEC_FILE, error_file

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


def _exec_agent(nproc: int, job_dir: str) -> None:
    bind_to_parent()  # kept across exec: the agent dies with the job child
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "--max-restarts=0", "--monitor-interval=0.5", "-m", "worker.rank_main", "rank", job_dir]
    os.execv(sys.executable, args)


def _run_rank(job_dir: Path) -> int:
    bind_to_parent()
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s rank{rank} %(name)s: %(message)s")
    try:
        spec = pickle.loads((job_dir / SPEC_FILE).read_bytes())
        from ddpm.train import run_training
        from ddpm.train.callbacks import TrainCallbacks

        conn = None
        if rank == 0:
            from worker.rank_relay import RelayStop, connect_rank0
            from worker.runner import _make_callbacks

            conn = connect_rank0()
            callbacks = _make_callbacks(conn, RelayStop(conn))
        else:
            callbacks = TrainCallbacks()  # the engine reduces a non-zero rank's callbacks to should_stop
        result = run_training(spec.config, spec.paths.run_dir, callbacks, resume=True)
        if conn is not None:
            callbacks.flush_progress()
            callbacks.send("done", {"status": result.status, "step": int(result.step)})
            conn.close()
        return 0
    except BaseException as exc:  # noqa: BLE001 - the child names the failing rank with this line
        from worker.failures import reason_for

        traceback.print_exc()
        if _peer_lost(exc):
            error_file(job_dir, rank).write_text(PEER_LOST_PREFIX + " ".join(str(exc).split())[:160])
            return 1
        try:
            data_dir = str(spec.paths.data_dir)  # type: ignore[possibly-undefined]
        except NameError:
            data_dir = ""
        error_file(job_dir, rank).write_text(reason_for(exc, data_dir))
        return 1


def _peer_lost(exc: BaseException) -> bool:
    """A collective failed because another process of the job died (it names the first cause)."""
    import torch.distributed as tdist

    # gloo reports a dead peer as a plain RuntimeError ("Connection closed by peer")
    return isinstance(exc, tdist.DistError) or (isinstance(exc, RuntimeError) and "by peer" in str(exc))


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "agent":
        _exec_agent(int(argv[1]), argv[2])
    if len(argv) == 2 and argv[0] == "rank":
        code = _run_rank(Path(argv[1]))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # skip interpreter teardown (data-loader threads can hang it)
    sys.stderr.write("usage: python -m worker.rank_main agent NPROC JOB_DIR | rank JOB_DIR\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
