#!/usr/bin/env bash
# One line per process of the local stack: name, pid, running or not.
set -uo pipefail
source "$(dirname "$0")/env.sh"
shopt -s nullglob
for pidfile in "$FMOPS_STACK_DIR"/pids/*.pid; do
  pid="$(cat "$pidfile")"
  kill -0 "$pid" 2>/dev/null && state=running || state="not running"
  printf '%-10s pid %-8s %s\n' "$(basename "$pidfile" .pid)" "$pid" "$state"
done
