"""Compile the kernels into one cache entry: ``python -m ddpm.nn.kernels.build ENTRY_DIR``.

Run as its own process by ``loader.build`` so that the engine can stop waiting for it (a
deadline) while the build goes on for the next run. Rules that keep a build from ever blocking
another process for good:

- One builder per entry at a time, by ``flock`` on ``ENTRY_DIR/build.lock``: the kernel drops
  the lock when its holder dies, however it dies (SIGKILL, OOM), so a killed build leaves no
  lock behind. torch's own lock file in the build folder, which a killed build does leave, is
  removed while we hold ours (no one else can be building then).
- The sources are copied into the entry first and compiled from there, so every checkout on
  the machine compiles the same paths and finds the others' library instead of rebuilding it.
- The library appears under its final name by an atomic rename, only when complete.

Exit status 0 when the library is there (built now or by another process); 1 with a last line
``build failed: <reason>`` on stderr otherwise.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import sys
from pathlib import Path

from .loader import CFLAGS, CSRC, LDFLAGS, LIBRARY, SOURCES


def build_entry(entry: Path) -> Path:
    """Build ``entry/LIBRARY`` unless it is there; returns its path."""
    entry.mkdir(parents=True, exist_ok=True)
    library = entry / LIBRARY
    with open(entry / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the kernel if this process dies
        if library.is_file():
            return library
        src = entry / "src"
        shutil.rmtree(src, ignore_errors=True)
        shutil.copytree(CSRC, src)
        work = entry / "work"
        work.mkdir(exist_ok=True)
        (work / "lock").unlink(missing_ok=True)  # torch's lock file, stale: we hold the real lock
        _compile(entry.name, [src / p.name for p in SOURCES], work)
        os.replace(work / f"{entry.name}.so", library)  # torch names the library after the entry
    return library


def _compile(name: str, sources: list[Path], work: Path) -> None:
    from torch.utils import cpp_extension

    try:  # the pinned ninja wheel, found even when the venv's bin is not on PATH
        import ninja

        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    except ImportError:
        pass
    cpp_extension.load(name=name, sources=[str(p) for p in sources], extra_cflags=list(CFLAGS),
                       extra_ldflags=list(LDFLAGS), build_directory=str(work),
                       is_python_module=False, verbose=False)


def main(argv: list[str]) -> int:
    try:
        build_entry(Path(argv[0]))
    except Exception as exc:  # noqa: BLE001 - the parent reports the reason in one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        sys.stderr.write(f"\nbuild failed: {type(exc).__name__}: {first}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
