#!/usr/bin/env bash
# Creates .venv and installs fmops with its dev tools the Postgres drivers and Celery (tests use the local services); torch is installed first and pinned, so no
# dependency can pull a multi-GB CUDA build. Re-running is a no-op unless pyproject.toml changed.
# --browser: also make sure Debian's Chromium is there for the browser tests (installed with apt-get only
# where this runs as root on Debian, as in CI and containers; elsewhere those tests skip with one line).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--browser" ]] && ! command -v chromium >/dev/null && [[ "$(id -u)" == 0 ]] \
    && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
    || echo "note: apt-get could not install chromium; the browser tests will skip"
fi
PYTHON="${PYTHON:-python3}"
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
"$VENV/bin/python" -m pip install --quiet -e ".[dev,postgres,celery,setfit]"
# compile the n-gram featuriser's kernels into numba's cache now, so no run or test pays it (~5-10 s) later
"$VENV/bin/python" -m fmops_pipelines.specialist.ngram_kernel
echo "$want" > "$stamp"
