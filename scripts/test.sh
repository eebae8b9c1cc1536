#!/usr/bin/env bash
# The project's test command: sets up what the tests need on a fresh machine, then runs them all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
source scripts/env.sh
cargo test --workspace --locked
