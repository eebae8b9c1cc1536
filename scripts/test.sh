#!/usr/bin/env bash
# The project's test command: sets up what the tests need on a fresh machine, then runs them all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
source scripts/env.sh
cargo test --workspace --locked
# The Python package (python/, docs/python.md): pytest in its own venv, with the CLI binary that
# the cargo tests built for the round trips; torch and the CLI must be there (no skipping in CI).
cargo build -p eood --locked --quiet
EOOD_REQUIRE_TORCH=1 EOOD_BIN="$PWD/target/debug/eood" \
  python/.venv-test/bin/pytest -q -p no:cacheprovider python/tests
# The framework-free CLI (no libtorch): it must build, and its neural commands say what they need.
# Last, because it replaces target/debug/eood with the build without `nn`.
cargo test -p eood --no-default-features --locked --test hostile_cli --test core_cli
