#!/usr/bin/env bash
# Label Studio for review rounds (`fmops review TASK`, the review sensor): its own virtual environment (it is a
# Django app with its own pins: never installed into fmops's), SQLite and media under FMOPS_STACK_DIR/label-studio,
# started in its own session with its PID in pids/label_studio.pid like the MLflow server.
#   deploy/local/label_studio.sh start | stop | status
# The admin account and its API token are made on first start and kept in FMOPS_STACK_DIR/label-studio/ (mode 600):
# env.sh exports LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY from there. Nothing here prints the token.
set -euo pipefail
source "$(dirname "$0")/env.sh"
venv="${FMOPS_LS_VENV:-$FMOPS_REPO/.labelstudio-venv}"
dir="$FMOPS_STACK_DIR/label-studio"
pidfile="$FMOPS_STACK_DIR/pids/label_studio.pid"
case "${1:-}" in
  start)
    [[ -x "$venv/bin/label-studio" ]] || { echo "label_studio.sh: no Label Studio in $venv (bash scripts/bootstrap.sh --label-studio)" >&2; exit 2; }
    mkdir -p "$dir" "$FMOPS_STACK_DIR"/{pids,logs}
    if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "label_studio already running (pid $(cat "$pidfile")) at $LABEL_STUDIO_URL"; exit 0
    fi
    umask 077
    [[ -s "$dir/token" ]] || "$FMOPS_BIN/python" -c "import secrets; print(secrets.token_hex(20))" > "$dir/token"
    [[ -s "$dir/password" ]] || "$FMOPS_BIN/python" -c "import secrets; print(secrets.token_urlsafe(16))" > "$dir/password"
    umask 022
    # the user, password and token go through the environment, not the command line `ps` shows
    LABEL_STUDIO_USERNAME="$FMOPS_LS_USER" LABEL_STUDIO_PASSWORD="$(cat "$dir/password")" \
    LABEL_STUDIO_USER_TOKEN="$(cat "$dir/token")" \
    LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK=true DJANGO_DB=sqlite LABEL_STUDIO_BASE_DATA_DIR="$dir" \
      setsid "$venv/bin/label-studio" start --no-browser --data-dir "$dir" --port "$FMOPS_LS_PORT" \
      --internal-host 127.0.0.1 --host "$LABEL_STUDIO_URL" --agree-fix-sqlite --enable-legacy-api-token \
      >>"$FMOPS_STACK_DIR/logs/label_studio.log" 2>&1 < /dev/null &
    echo $! > "$pidfile"
    for _ in $(seq "${FMOPS_LS_WAIT_S:-240}"); do
      if "$FMOPS_BIN/python" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" \
          "$LABEL_STUDIO_URL/health" 2>/dev/null; then
        echo "label_studio started (pid $(cat "$pidfile")) at $LABEL_STUDIO_URL, user $FMOPS_LS_USER (password and API token in $dir)"
        exit 0
      fi
      kill -0 "$(cat "$pidfile")" 2>/dev/null || break
      sleep 1
    done
    echo "label_studio did not answer at $LABEL_STUDIO_URL (see $FMOPS_STACK_DIR/logs/label_studio.log)" >&2
    exit 1 ;;
  stop) exec "$(dirname "$0")/stop.sh" label_studio ;;
  status)
    if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "label_studio running (pid $(cat "$pidfile")) at $LABEL_STUDIO_URL"
    else
      echo "label_studio not running"
    fi ;;
  *) echo "usage: deploy/local/label_studio.sh start | stop | status" >&2; exit 2 ;;
esac
