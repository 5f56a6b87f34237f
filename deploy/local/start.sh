#!/usr/bin/env bash
# Starts the local stack against the localhost services: MLflow server (Postgres store, artifacts in
# FMOPS_STACK_DIR/mlartifacts), N Celery workers, and the Dagster webserver + daemon on the Postgres
# instance. Each process is its own session (setsid): its PID in pids/<name>.pid stops it and its children.
#   deploy/local/start.sh [--workers N] [--no-ui]
set -euo pipefail
source "$(dirname "$0")/env.sh"
workers=2 ui=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --workers) workers="$2"; shift 2 ;;
    --no-ui) ui=0; shift ;;
    *) echo "start.sh: unknown option $1 (use --workers N, --no-ui)" >&2; exit 2 ;;
  esac
done
mkdir -p "$FMOPS_STACK_DIR"/{pids,logs,mlartifacts} "$DAGSTER_HOME" "$FMOPS_HOME"
[[ -f "$DAGSTER_HOME/dagster.yaml" ]] || cp "$FMOPS_REPO/deploy/postgres/dagster.yaml" "$DAGSTER_HOME/dagster.yaml"
"$FMOPS_BIN/python" "$FMOPS_REPO/deploy/local/ensure_databases.py" "$DAGSTER_PG_DB" "$FMOPS_MLFLOW_DB"
# concurrency pools across all runs: steps calling the FM (the endpoint's capacity), steps training (the GPU)
"$FMOPS_BIN/dagster" instance migrate >/dev/null
"$FMOPS_BIN/dagster" instance concurrency set fmops_fm "$FMOPS_POOL_FM" >/dev/null
"$FMOPS_BIN/dagster" instance concurrency set fmops_training "$FMOPS_POOL_TRAINING" >/dev/null

start() {  # start NAME CMD...: skipped when its pid is alive; output to logs/NAME.log
  local name="$1"; shift
  local pidfile="$FMOPS_STACK_DIR/pids/$name.pid"
  if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "$name already running (pid $(cat "$pidfile"))"; return
  fi
  setsid "$@" >>"$FMOPS_STACK_DIR/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  echo "$name started (pid $!, log $FMOPS_STACK_DIR/logs/$name.log)"
}

wait_for() {  # wait_for WHAT URL SECONDS
  for _ in $(seq "$3"); do
    "$FMOPS_BIN/python" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$2" \
      2>/dev/null && return 0
    sleep 1
  done
  echo "$1 did not answer at $2 within $3 s (see $FMOPS_STACK_DIR/logs)" >&2; return 1
}

pg_user="$DAGSTER_PG_USER${DAGSTER_PG_PASSWORD:+:$DAGSTER_PG_PASSWORD}"
# the store URI (with its password) goes through the environment, not the command line `ps` shows
# MLflow's own job runner (GenAI jobs, unused here) would keep seven polling processes busy: off
MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false MLFLOW_BACKEND_STORE_URI="postgresql+psycopg2://$pg_user@$DAGSTER_PG_HOST:$DAGSTER_PG_PORT/$FMOPS_MLFLOW_DB" \
  start mlflow "$FMOPS_BIN/mlflow" server --host 127.0.0.1 --port "$FMOPS_MLFLOW_PORT" --workers 1 \
  --artifacts-destination "$FMOPS_STACK_DIR/mlartifacts"
for i in $(seq "$workers"); do
  OMP_NUM_THREADS="$FMOPS_WORKER_THREADS" MKL_NUM_THREADS="$FMOPS_WORKER_THREADS" \
    OPENBLAS_NUM_THREADS="$FMOPS_WORKER_THREADS" start "worker$i" "$FMOPS_BIN/celery" -A fmops_pipelines.celery_app \
    worker -Q "$FMOPS_CELERY_QUEUE" -n "$FMOPS_CELERY_QUEUE-w$i@%h" --concurrency 1 --loglevel INFO
done
if [[ "$ui" == 1 ]]; then
  start webserver "$FMOPS_BIN/dagster-webserver" -m fmops_pipelines.definitions -h 127.0.0.1 -p "$FMOPS_UI_PORT"
  start daemon "$FMOPS_BIN/dagster-daemon" run -m fmops_pipelines.definitions
fi
wait_for "MLflow server" "$MLFLOW_TRACKING_URI/health" 120
for i in $(seq "$workers"); do  # each worker answers a ping once it is consuming
  for _ in $(seq 120); do
    "$FMOPS_BIN/celery" -A fmops_pipelines.celery_app inspect ping -d "$FMOPS_CELERY_QUEUE-w$i@$(hostname)" --timeout 2 \
      >/dev/null 2>&1 && break
    sleep 1
  done
done
[[ "$ui" == 1 ]] && wait_for "Dagster webserver" "http://127.0.0.1:$FMOPS_UI_PORT/server_info" 180
echo "stack up: UI http://127.0.0.1:$FMOPS_UI_PORT, MLflow $MLFLOW_TRACKING_URI, $workers worker(s); logs in $FMOPS_STACK_DIR/logs"
echo "use it from a shell: source deploy/local/env.sh && fmops run <task>"
