"""The engine's C++ CPU kernels (ddpm/nn/kernels/csrc): compiled on first use, cached, loaded as torch ops.

Why compiled here rather than shipped: the kernels are built with ``-march=native`` for the CPU
they run on (AVX-512 where there is one), which a prebuilt wheel cannot be. The build takes
about 7 s with g++ and ninja (a pinned dependency) and is cached by torch's extension loader
under ``$TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``). The cache entry's
name carries a hash of the CPU's feature flags, so a home directory shared by different machines
never runs code built for another CPU. ``make setup`` builds it ahead of time (``ddpm kernels``).

Without a compiler, or with ``DDPM_NATIVE=0``, the engine runs the same math in PyTorch ops
(slower on CPU; CUDA never uses these kernels) and says once, in the ``ddpm`` log, why.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger("ddpm")

CSRC = Path(__file__).with_name("csrc")
SOURCES = [CSRC / "norm_act.cpp", CSRC / "softmax.cpp"]
CFLAGS = ["-O3", "-march=native", "-std=c++20", "-fopenmp"]  # OpenMP: at::parallel_for is a pragma in its header
LDFLAGS = ["-fopenmp"]  # libgomp.so.1: the copy torch already loaded, so one thread pool

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
    """The cache entry's name: a hash of the CPU, the flags and every file in csrc/ (torch's
    loader would notice a changed .cpp but not a changed header)."""
    h = hashlib.sha1(_cpu_description().encode())
    h.update(" ".join(CFLAGS + LDFLAGS).encode())
    for path in sorted(CSRC.iterdir()):
        h.update(path.name.encode() + path.read_bytes())
    return f"ddpm_native_{h.hexdigest()[:12]}"


def _build() -> Any:
    import torch
    from torch.utils import cpp_extension

    path = os.environ.get("PATH", "")
    try:  # the pinned ninja wheel, found even when the venv's bin is not on PATH
        import ninja

        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + path
    except ImportError:
        pass
    try:
        cpp_extension.load(
            name=build_name(),
            sources=[str(p) for p in SOURCES],
            extra_cflags=list(CFLAGS),  # copies: the loader appends to the lists it is given
            extra_ldflags=list(LDFLAGS),
            is_python_module=False,
            verbose=False,
        )
    finally:
        os.environ["PATH"] = path
    return torch.ops.ddpm_native


def ops() -> Optional[Any]:
    """``torch.ops.ddpm_native`` once built and loaded, or None (the reason is in ``status()``)."""
    if "ops" in _state:
        return _state["ops"]
    with _lock:
        if "ops" not in _state:
            loaded, reason = None, ""
            if os.environ.get("DDPM_NATIVE", "1") == "0":
                reason = "disabled by DDPM_NATIVE=0"
            else:
                try:
                    loaded = _build()
                except Exception as e:  # noqa: BLE001 - no compiler, a failed build: fall back, say why
                    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                    reason = f"{type(e).__name__}: {first}"
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
