"""Exit codes of the ``ddpm`` command, one set for every subcommand (torch-free)."""
from __future__ import annotations

import signal

EXIT_FAILED = 1  # training failed (e.g. repeated non-finite losses)
EXIT_USAGE = 2  # a bad config, flag, file or run folder
# the shell's code for a process ended by Ctrl-C: training stopped after writing a checkpoint
EXIT_INTERRUPTED = 128 + int(signal.SIGINT)
# a process of a multi-process job stopped because another process of the job failed
EXIT_PEER_LOST = 3
