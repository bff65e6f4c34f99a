"""The engine's C++ CPU kernels (ddpm/nn/kernels/csrc): built once per machine, cached, loaded as torch ops.

Why compiled here rather than shipped: the kernels are built with ``-march=native`` for the CPU
they run on (AVX-512 where there is one), which a prebuilt wheel cannot be. ``make setup`` (and
the worker image) build them at install time with ``ddpm kernels``, so a job normally only loads
a finished library. The build takes seconds with g++ and ninja (a pinned dependency).

Cache: ``$TORCH_EXTENSIONS_DIR/ddpm/<entry>/`` (default ``~/.cache/torch_extensions``). The
entry's name is a hash of what the library depends on and nothing else: the source files'
contents, the compiler flags, the CPU's feature flags (a home shared by different machines never
runs code built for another CPU), and the torch and Python versions. Every checkout with the
same sources shares it.

A job never waits without bound: the build runs in its own process (``build.py``: a lock that
dies with its holder, atomic publication) and the engine waits for it at most
``DDPM_KERNEL_BUILD_TIMEOUT`` seconds (default 120); after that, or without a compiler, or with
``DDPM_NATIVE=0``, the engine runs the same math in PyTorch ops (slower on CPU; CUDA never uses
these kernels) and says once, in the ``ddpm`` log, why.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger("ddpm")

CSRC = Path(__file__).with_name("csrc")
SOURCES = [CSRC / "norm_act.cpp", CSRC / "softmax.cpp"]
CFLAGS = ["-O3", "-march=native", "-std=c++20", "-fopenmp"]  # OpenMP: at::parallel_for is a pragma in its header
LDFLAGS = ["-fopenmp"]  # libgomp.so.1: the copy torch already loaded, so one thread pool
LIBRARY = "ddpm_native.so"
DEFAULT_TIMEOUT_S = 120.0

_lock = threading.Lock()
_state: dict[str, Any] = {}


def _cpu_description() -> str:
    """This CPU's vendor, model and feature flags: what -march=native compiles for."""
    lines: list[str] = []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "model name", "vendor_id")):
                    lines.append(line)
                if len(lines) >= 3:
                    break
    except OSError:
        import platform

        lines = [platform.machine(), platform.processor()]
    return "".join(lines)


def build_name() -> str:
    """The cache entry's name: a hash of the CPU, the flags, the torch and Python versions and
    every file in csrc/ by name and contents (never by path, so checkouts share the entry)."""
    import torch

    h = hashlib.sha1(_cpu_description().encode())
    h.update(" ".join(CFLAGS + LDFLAGS).encode())
    h.update(f"torch {torch.__version__} python {sys.version_info[:2]}".encode())
    for path in sorted(CSRC.iterdir()):
        h.update(path.name.encode() + path.read_bytes())
    return f"ddpm_native_{h.hexdigest()[:12]}"


def entry_dir() -> Path:
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or str(Path.home() / ".cache" / "torch_extensions")
    return Path(root) / "ddpm" / build_name()


def build_timeout_s() -> float:
    try:
        return float(os.environ.get("DDPM_KERNEL_BUILD_TIMEOUT", DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S


def build(timeout_s: float) -> Path:
    """The entry's library, built by a ``build.py`` process unless it is there already.

    Waits at most ``timeout_s`` seconds (``math.inf``: until the build ends); a build still
    running then goes on in the background and TimeoutError is raised. RuntimeError when the
    build fails.
    """
    entry = entry_dir()
    library = entry / LIBRARY
    if library.is_file():
        return library
    entry.mkdir(parents=True, exist_ok=True)
    log_path = entry / f"build-{os.getpid()}.log"
    root = str(Path(__file__).resolve().parents[3])  # this checkout, whatever the cwd
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    with open(log_path, "wb") as out:  # a file, not a pipe: nothing blocks once we stop reading
        proc = subprocess.Popen([sys.executable, "-m", "ddpm.nn.kernels.build", str(entry)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=False)
    try:
        code = proc.wait(timeout=None if math.isinf(timeout_s) else timeout_s)
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"the build did not finish within {timeout_s:g} s (DDPM_KERNEL_BUILD_TIMEOUT); "
                           "it goes on in the background for the next run") from None
    text = log_path.read_text(errors="replace")
    log_path.unlink(missing_ok=True)
    if code != 0 or not library.is_file():
        failed = [line for line in text.splitlines() if line.startswith("build failed: ")]
        raise RuntimeError(failed[-1][len("build failed: "):] if failed else f"the build exited with {code}")
    return library


def _load(timeout_s: float) -> Any:
    import torch

    torch.ops.load_library(str(build(timeout_s)))
    return torch.ops.ddpm_native


def ops(timeout_s: Optional[float] = None) -> Optional[Any]:
    """``torch.ops.ddpm_native`` once built and loaded, or None (the reason is in ``status()``).

    The first call decides, waiting for a build at most ``timeout_s`` seconds (default:
    ``DDPM_KERNEL_BUILD_TIMEOUT``; ``math.inf`` for no limit, as ``ddpm kernels`` does); later
    calls return that outcome at once."""
    if "ops" in _state:
        return _state["ops"]
    with _lock:
        if "ops" not in _state:
            loaded, reason = None, ""
            if os.environ.get("DDPM_NATIVE", "1") == "0":
                reason = "disabled by DDPM_NATIVE=0"
            else:
                try:
                    loaded = _load(build_timeout_s() if timeout_s is None else timeout_s)
                except TimeoutError as e:
                    reason = str(e)
                    log.warning("native CPU kernels not ready: %s; this run uses the PyTorch-op path", reason)
                except Exception as e:  # noqa: BLE001 - no compiler, a failed build: fall back, say why
                    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                    reason = first if isinstance(e, RuntimeError) else f"{type(e).__name__}: {first}"
                    log.warning("native CPU kernels unavailable (%s); using the PyTorch-op path, which "
                                "is slower on CPU (install g++ to get them)", reason)
            # "ops" last: a thread reading it without the lock sees either nothing or the outcome
            _state["reason"] = reason
            _state["ops"] = loaded
    return _state["ops"]


def available() -> bool:
    return ops() is not None


def status() -> str:
    """One line: whether the kernels are in use, or why not."""
    if ops() is not None:
        return "native CPU kernels loaded"
    return f"native CPU kernels not in use: {_state['reason']}"
