#!/usr/bin/env bash
# Ends what `make run` started (.run/pids: "name pid" lines), in an order that loses nothing:
# the worker first (it checkpoints its job and hands it back through Redis and the database),
# then the API, then Redis. Each gets TERM, then KILL after its grace period.
cd "$(dirname "$0")/.."
RUN_DIR="${RUN_DIR:-.run}"
[ -f "$RUN_DIR/pids" ] || { echo "nothing to stop"; exit 0; }
exec 9>"$RUN_DIR/stop.lock"
flock 9  # `make stop` and the run's own Ctrl-C handler may both arrive: one stops, one waits
[ -f "$RUN_DIR/pids" ] || exit 0
touch "$RUN_DIR/stopping"  # tells `make run`'s loop that these exits are wanted (scripts/run.sh)

stop_one() {  # name, grace seconds
  local pid
  pid=$(awk -v n="$1" '$1 == n {print $2}' "$RUN_DIR/pids")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 $(($2 * 2))); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  echo "$1 did not stop within $2 s: killing it"
  kill -KILL "$pid" 2>/dev/null
}

stop_one worker 40   # a running job gets WORKER_CANCEL_GRACE_S (30 s) to checkpoint
stop_one api 10
stop_one redis 10
rm -f "$RUN_DIR/pids"
echo "stopped"
