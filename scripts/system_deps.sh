#!/usr/bin/env bash
# Installs the system programs the tests drive for real: redis-server, chromium, PostgreSQL,
# tcmalloc, which the worker preloads into its engine processes (ddpm/allocator.py), and g++,
# which builds the engine's native CPU kernels (ddpm/nn/native.py).
# As root it uses apt; otherwise it names exactly what is missing and fails.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v chromium >/dev/null || missing+=(chromium)
command -v g++ >/dev/null || missing+=(g++)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
python3 -c "import ctypes.util, sys; sys.exit(ctypes.util.find_library('tcmalloc_minimal') is None)" \
  || missing+=(libtcmalloc-minimal4)  # found the way ddpm/allocator.py finds it
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing with apt: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "missing system packages: ${missing[*]} (install them, e.g. 'sudo apt-get install ${missing[*]}')" >&2
  exit 1
fi
