# The local stack's settings. `source deploy/local/env.sh` in a shell and `fmops run/batch/ui ...` uses the
# stack (Postgres Dagster instance, MLflow server, Celery workers); start.sh and stop.sh source it too.
# Every value may be set before sourcing; the defaults match the services of a developer machine.
_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export FMOPS_REPO="${FMOPS_REPO:-$(cd "$_here/../.." && pwd)}"
export FMOPS_BIN="${FMOPS_BIN:-$FMOPS_REPO/.venv/bin}"              # the venv fmops is installed in
export FMOPS_STACK_DIR="${FMOPS_STACK_DIR:-$FMOPS_REPO/.fmops-stack}" # pids/, logs/, dagster_home/, mlartifacts/
export FMOPS_HOME="${FMOPS_HOME:-$FMOPS_STACK_DIR/home}"           # asset storage + FM cache: shared by workers
export FMOPS_ASSETS_DIR="${FMOPS_ASSETS_DIR:-$FMOPS_REPO/assets}"
export DAGSTER_HOME="${DAGSTER_HOME:-$FMOPS_STACK_DIR/dagster_home}"
export DAGSTER_PG_HOST="${DAGSTER_PG_HOST:-127.0.0.1}" DAGSTER_PG_PORT="${DAGSTER_PG_PORT:-5432}"
export DAGSTER_PG_USER="${DAGSTER_PG_USER:-postgres}" DAGSTER_PG_PASSWORD="${DAGSTER_PG_PASSWORD:-}"
export DAGSTER_PG_DB="${DAGSTER_PG_DB:-fmops_dagster}"
export FMOPS_MLFLOW_DB="${FMOPS_MLFLOW_DB:-fmops_mlflow}"
export FMOPS_MLFLOW_PORT="${FMOPS_MLFLOW_PORT:-5000}"
export MLFLOW_TRACKING_URI="${MLFLOW_TRACKING_URI:-http://127.0.0.1:$FMOPS_MLFLOW_PORT}"
export FMOPS_UI_PORT="${FMOPS_UI_PORT:-3000}"
export FMOPS_EXECUTOR="${FMOPS_EXECUTOR:-celery}"
export FMOPS_CELERY_BROKER="${FMOPS_CELERY_BROKER:-pyamqp://guest:guest@127.0.0.1:5672//}"
export FMOPS_CELERY_BACKEND="${FMOPS_CELERY_BACKEND:-redis://127.0.0.1:6379/0}"
export FMOPS_CELERY_QUEUE="${FMOPS_CELERY_QUEUE:-dagster}"   # workers listen here; steps are sent here
export FMOPS_WORKER_THREADS="${FMOPS_WORKER_THREADS:-1}"      # math threads per worker: one worker per core
export FMOPS_POOL_FM="${FMOPS_POOL_FM:-2}"                 # steps calling the FM at once, all runs together
export FMOPS_POOL_TRAINING="${FMOPS_POOL_TRAINING:-1}"     # training steps at once (one per GPU)
unset FMOPS_OWN_DAGSTER_HOME
# Label Studio for review rounds (deploy/local/label_studio.sh): URL, admin user, and the API token it made
export FMOPS_LS_PORT="${FMOPS_LS_PORT:-8080}"
export FMOPS_LS_USER="${FMOPS_LS_USER:-admin@fmops.local}"
export LABEL_STUDIO_URL="${LABEL_STUDIO_URL:-http://127.0.0.1:$FMOPS_LS_PORT}"
if [[ -z "${LABEL_STUDIO_API_KEY:-}" && -s "$FMOPS_STACK_DIR/label-studio/token" ]]; then
  LABEL_STUDIO_API_KEY="$(cat "$FMOPS_STACK_DIR/label-studio/token")"
  export LABEL_STUDIO_API_KEY
fi
