#!/usr/bin/env bash
# Ends the processes a `make run` started (pids in .run/pids): TERM, then KILL after 10 s.
cd "$(dirname "$0")/.."
[ -f .run/pids ] || { echo "nothing to stop"; exit 0; }
pids=$(cat .run/pids)
kill -TERM $pids 2>/dev/null
for _ in $(seq 1 20); do
  alive=""
  for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
  [ -z "$alive" ] && break
  sleep 0.5
done
[ -n "${alive:-}" ] && kill -KILL $alive 2>/dev/null
rm -f .run/pids
echo "stopped"
