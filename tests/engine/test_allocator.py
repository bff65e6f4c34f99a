"""tcmalloc for training processes (ddpm/allocator.py): the worker's children and the CLI re-exec.

`make test` installs libtcmalloc-minimal4 (scripts/system_deps.sh), so these run the real
library: a child started with the worker's environment must have it mapped.
"""
import subprocess
import sys

from ddpm.allocator import preload_tcmalloc

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


def test_the_cli_reexecutes_only_when_that_changes_something(monkeypatch):
    from ddpm.allocator import reexec_with_tcmalloc

    # each of these must return (an exec would replace this test process)
    monkeypatch.setenv("DDPM_ALLOCATOR", "system")
    reexec_with_tcmalloc(["train", "--config", "x.json"])
    monkeypatch.delenv("DDPM_ALLOCATOR")
    monkeypatch.setenv("_DDPM_TCMALLOC_REEXEC", "1")  # already the re-executed process
    reexec_with_tcmalloc(["train", "--config", "x.json"])
    monkeypatch.delenv("_DDPM_TCMALLOC_REEXEC")
    monkeypatch.setenv("LD_PRELOAD", "libtcmalloc_minimal.so.4")  # preloaded by the user
    reexec_with_tcmalloc(["train", "--config", "x.json"])
