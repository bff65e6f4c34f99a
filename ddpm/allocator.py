"""tcmalloc for the processes that train and sample.

Why: glibc malloc returns every freed block above its mmap threshold (at most 32 MB) to the
kernel, so CPU training page-faults its big activations back in on every step; tcmalloc keeps
them (the speed-up: bench/RESULTS.md "unet", tcmalloc run). An allocator must be loaded before the process
starts, so: the worker sets ``LD_PRELOAD`` for the engine children it spawns (worker/main.py),
and ``ddpm train`` / ``ddpm sample`` re-execute themselves once with it (``reexec_with_tcmalloc``).
"""
from __future__ import annotations

import ctypes.util
import os
import sys
from collections.abc import MutableMapping, Sequence
from typing import Optional

LIBRARY = "tcmalloc_minimal"  # Debian/Ubuntu package libtcmalloc-minimal4
_REEXECUTED = "_DDPM_TCMALLOC_REEXEC"  # set in the re-executed process: never loop


def preload_tcmalloc(environ: MutableMapping[str, str] = os.environ) -> Optional[str]:
    """Prepend tcmalloc to ``LD_PRELOAD`` in ``environ`` when the library is installed.

    Returns what child processes will preload (None: the system allocator). ``DDPM_ALLOCATOR=
    system`` opts out; an LD_PRELOAD that already names a tcmalloc is left as it is.
    """
    current = environ.get("LD_PRELOAD", "").strip()
    if environ.get("DDPM_ALLOCATOR", "").strip().lower() == "system":
        return None
    if "tcmalloc" in current:
        return current
    lib = ctypes.util.find_library(LIBRARY)
    if lib is None:
        return None
    environ["LD_PRELOAD"] = f"{lib} {current}".strip()
    # tcmalloc reports single allocations above 1 GB on stderr, which would land in job logs
    environ.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(1 << 40))
    return environ["LD_PRELOAD"]


def reexec_with_tcmalloc(argv: Sequence[str]) -> None:
    """Replace this process by ``python -m ddpm <argv>`` with tcmalloc preloaded, when that
    changes anything; otherwise return. The PID, stdio and exit code stay the command's own."""
    if os.environ.get(_REEXECUTED):
        return
    env = dict(os.environ)
    before = env.get("LD_PRELOAD", "")
    if preload_tcmalloc(env) is None or env.get("LD_PRELOAD", "") == before:
        return
    env[_REEXECUTED] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "ddpm", *argv], env)
