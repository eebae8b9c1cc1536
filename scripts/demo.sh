#!/usr/bin/env bash
# The main job (placeholder until the benchmark lands): builds eood.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
cargo build --release -p eood
