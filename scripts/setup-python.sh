#!/usr/bin/env bash
# Project-local Python environment (.venv): the reference tools used by golden-value
# scripts and benchmarks (numpy, scikit-learn) and, for the neural layer, PyTorch
# (libtorch for tch). Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/python -m pip install -q --disable-pip-version-check -r scripts/requirements-ref.txt
