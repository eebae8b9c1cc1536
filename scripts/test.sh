#!/usr/bin/env bash
# The project's test command: sets up what the tests need on a fresh machine, then runs them all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
source scripts/env.sh
# A one-shot build gains nothing from incremental state (GBs on disk); a developer can override.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo test --workspace --locked
# The Python package (python/, docs/python.md): pytest in its own venv, with the CLI binary that
# the cargo tests built for the round trips; torch and the CLI must be there (no skipping in CI).
# (`cargo test --workspace` built target/debug/eood for the CLI tests; a separate `cargo build -p
# eood` would resolve features differently and rebuild tract and tch.)
EOOD_REQUIRE_TORCH=1 EOOD_BIN="$PWD/target/debug/eood" \
  python/.venv-test/bin/pytest -q -p no:cacheprovider python/tests
# The libtorch build runs outside the checkout without LD_LIBRARY_PATH (rpath from
# crates/eood/build.rs): a copy in a temporary folder, a clean environment (the binary links
# libtorch whatever it runs, so any command that starts shows it).
# (The folder is under target/, on the same disk as the build: a hard link, no copy.)
_eood_tmp="$(mktemp -d -p target rpath-check.XXXXXX)"
_eood_tmp="$(cd "$_eood_tmp" && pwd)"
ln -f target/debug/eood "$_eood_tmp/eood" 2>/dev/null || cp target/debug/eood "$_eood_tmp/eood"
(cd "$_eood_tmp" && env -i PATH=/usr/bin:/bin ./eood bundle check "$OLDPWD/models/fmnist-bundle-torch")
# The framework-free CLI (no libtorch): it must build, its neural commands say what they need, and
# it serves ONNX bundles. Last, because it replaces target/debug/eood with the build without `nn`.
# `--workspace` keeps every member selected, so shared dependencies get the same features as in
# the first run and only eood itself is rebuilt (`-p eood` would rebuild the tract stack).
cargo test --workspace --no-default-features --locked \
  --test hostile_cli --test core_cli --test bundle_cli --test serve_cli
# Installable: that binary (what `cargo install --path crates/eood --no-default-features`
# installs) runs from another folder with a clean environment (no compile-time paths).
ln -f target/debug/eood "$_eood_tmp/eood-no-nn" 2>/dev/null || cp target/debug/eood "$_eood_tmp/eood-no-nn"
(cd "$_eood_tmp" && env -i PATH=/usr/bin:/bin ./eood-no-nn bundle check "$OLDPWD/models/fmnist-bundle")
rm -rf "$_eood_tmp"
