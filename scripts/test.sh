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
# The libtorch build runs outside the checkout without LD_LIBRARY_PATH (rpath from
# crates/eood/build.rs): a copy in a temporary folder, a clean environment (the binary links
# libtorch whatever it runs, so any command that starts shows it).
_eood_tmp="$(mktemp -d)"
cp target/debug/eood "$_eood_tmp/eood"
(cd "$_eood_tmp" && env -i PATH=/usr/bin:/bin ./eood bundle check "$OLDPWD/models/fmnist-bundle")
# The framework-free CLI (no libtorch): it must build, its neural commands say what they need, and
# it serves ONNX bundles. Last, because it replaces target/debug/eood with the build without `nn`.
cargo test -p eood --no-default-features --locked --test hostile_cli --test core_cli --test bundle_cli
# Installable: `cargo install` of that build (debug profile: the artifacts just built) into a
# temporary root runs from another folder with a clean environment (no compile-time paths).
cargo install --locked --debug --quiet --no-default-features --path crates/eood --root "$_eood_tmp/root"
(cd "$_eood_tmp" && env -i PATH=/usr/bin:/bin ./root/bin/eood bundle check "$OLDPWD/models/fmnist-bundle")
rm -rf "$_eood_tmp"
