"""The worker preloads tcmalloc into the engine processes it starts (worker/allocator.py).

`make test` installs libtcmalloc-minimal4 (scripts/system_deps.sh), so these run the real
library: a child started with the worker's environment must have it mapped.
"""
import subprocess
import sys

from worker.allocator import preload_tcmalloc

MAPS = "print(open('/proc/self/maps').read())"


def test_children_started_after_the_preload_run_on_tcmalloc():
    env = {"PATH": "/usr/bin:/bin", "LD_PRELOAD": ""}
    lib = preload_tcmalloc(env)
    assert lib is not None and "tcmalloc_minimal" in env["LD_PRELOAD"]
    maps = subprocess.run([sys.executable, "-c", MAPS], env=env, capture_output=True, text=True,
                          check=True).stdout
    assert "libtcmalloc_minimal" in maps
    plain = subprocess.run([sys.executable, "-c", MAPS], env={"PATH": "/usr/bin:/bin"},
                           capture_output=True, text=True, check=True).stdout
    assert "libtcmalloc_minimal" not in plain


def test_system_opt_out_and_existing_preloads_are_respected():
    env = {"DDPM_ALLOCATOR": "system"}
    assert preload_tcmalloc(env) is None and "LD_PRELOAD" not in env

    env = {"LD_PRELOAD": "libfoo.so"}
    preload_tcmalloc(env)
    parts = env["LD_PRELOAD"].split()
    assert parts[-1] == "libfoo.so" and "tcmalloc_minimal" in parts[0]

    env = {"LD_PRELOAD": "/opt/lib/libtcmalloc.so.4"}  # the user's own tcmalloc wins
    assert preload_tcmalloc(env) == "/opt/lib/libtcmalloc.so.4"
    assert env["LD_PRELOAD"] == "/opt/lib/libtcmalloc.so.4"
