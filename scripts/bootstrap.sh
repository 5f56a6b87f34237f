#!/usr/bin/env bash
# Creates .venv and installs fmops with its dev tools the Postgres drivers and Celery (tests use the local services); torch is installed first and pinned, so no
# dependency can pull a multi-GB CUDA build. Re-running is a no-op unless pyproject.toml changed.
# --browser: also make sure Debian's Chromium is there for the browser tests (installed with apt-get only
# where this runs as root on Debian, as in CI and containers; elsewhere those tests skip with one line).
# --label-studio: also install Label Studio into its own environment (.labelstudio-venv, FMOPS_LS_VENV): review
# rounds and their tests use it (deploy/local/label_studio.sh); it is a Django app with its own pins, never
# installed into fmops's environment.
set -euo pipefail
cd "$(dirname "$0")/.."
browser=0 label_studio=0
for arg in "$@"; do
  case "$arg" in
    --browser) browser=1 ;;
    --label-studio) label_studio=1 ;;
    *) echo "bootstrap.sh: unknown option $arg (use --browser, --label-studio)" >&2; exit 2 ;;
  esac
done
PYTHON="${PYTHON:-python3}"
if [[ "$label_studio" == 1 ]]; then
  # sentry-sdk 3.0 (2026-12) rejects an option Label Studio 1.23 passes it at start: the server never answers
  LS_VENV="${FMOPS_LS_VENV:-.labelstudio-venv}" LS_SPEC="label-studio==1.23.2 sentry-sdk<3"
  if [[ "$(cat "$LS_VENV/.fmops-installed" 2>/dev/null)" != "$LS_SPEC" ]]; then
    [[ -x "$LS_VENV/bin/python" ]] || "$PYTHON" -m venv "$LS_VENV"
    "$LS_VENV/bin/python" -m pip install --quiet --upgrade pip \
      && "$LS_VENV/bin/python" -m pip install --quiet $LS_SPEC && echo "$LS_SPEC" > "$LS_VENV/.fmops-installed" \
      || echo "note: Label Studio could not be installed into $LS_VENV; the Label Studio tests will skip"
  fi
fi
if [[ "$browser" == 1 ]] && ! command -v chromium >/dev/null && [[ "$(id -u)" == 0 ]] \
    && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
    || echo "note: apt-get could not install chromium; the browser tests will skip"
fi
VENV="${FMOPS_VENV:-.venv}"
TORCH_SPEC="${FMOPS_TORCH_SPEC:-torch==2.13.0}"
stamp="$VENV/.fmops-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $TORCH_SPEC"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC"
"$VENV/bin/python" -m pip install --quiet -e ".[dev,postgres,celery,setfit,onnx]"
# compile the n-gram featuriser's kernels into numba's cache now, so no run or test pays it (~5-10 s) later
"$VENV/bin/python" -m fmops_pipelines.specialist.ngram_kernel
echo "$want" > "$stamp"
