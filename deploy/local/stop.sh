#!/usr/bin/env bash
# Stops every process start.sh started, by the PID it recorded: SIGTERM to its session (the process and its
# children: code servers, Celery pool processes), SIGKILL after 30 s if anything is left.
#   deploy/local/stop.sh [NAME ...]    (names as in pids/: mlflow, worker2, ...; default: all)
set -uo pipefail
source "$(dirname "$0")/env.sh"
shopt -s nullglob
pidfiles=("$FMOPS_STACK_DIR"/pids/*.pid)
if [[ $# -gt 0 ]]; then
  pidfiles=()
  for name in "$@"; do pidfiles+=("$FMOPS_STACK_DIR/pids/$name.pid"); done
fi
for pidfile in "${pidfiles[@]}"; do
  [[ -f "$pidfile" ]] || { echo "$(basename "$pidfile" .pid): no such process in $FMOPS_STACK_DIR/pids"; continue; }
  name="$(basename "$pidfile" .pid)" pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 60); do
      pgrep -s "$pid" >/dev/null || break
      sleep 0.5
    done
    if pgrep -s "$pid" >/dev/null; then
      kill -KILL -- "-$pid" 2>/dev/null
      echo "$name (pid $pid) killed after 30 s"
    else
      echo "$name (pid $pid) stopped"
    fi
  else
    echo "$name (pid $pid) was not running"
  fi
  rm -f "$pidfile"
done
