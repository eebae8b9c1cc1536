#!/usr/bin/env bash
# One-time (idempotent) setup on a fresh machine.
#   scripts/setup.sh           everything: Rust build deps, Python/torch, benchmark data sources
#   scripts/setup.sh --tests   only what the test suite needs (no benchmark data)
# Both set up the Python package and its pytest venv (scripts/setup-python.sh --pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-python.sh --pytest
if [ "${1:-}" != "--tests" ] && [ -f scripts/fetch-sources.sh ]; then
  bash scripts/fetch-sources.sh
fi
