#!/usr/bin/env bash
# The full Fashion-MNIST OOD benchmark (docs/experiments.md): the shipped pre-trained model, MSP /
# energy / ODIN / Mahalanobis, OE and energy fine-tuning with margins chosen on validation data,
# Table 1, Table 2, Figures 3, 4a, 4b. About 15 minutes on 2 CPU cores.
#   scripts/bench-fmnist.sh [OUT_DIR] [extra eood bench flags...]
# From scratch instead of the shipped model: add --pretrain (drops --shipped; see below).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
OUT="${1:-results/fmnist-ood}"
shift || true
cargo build --release --locked -p eood
EOOD=target/release/eood
DATA="$("$EOOD" data path cache)/fmnist-ood"
if [ ! -f "$DATA/manifest.json" ]; then
  "$EOOD" data fetch mnist-test notmnist-test omniglot-small
  "$EOOD" data build fmnist-ood
fi
MODEL=(--shipped)
ARGS=()
for a in "$@"; do
  if [ "$a" = "--pretrain" ]; then MODEL=(); else ARGS+=("$a"); fi
done
"$EOOD" bench fmnist-ood "${MODEL[@]}" --threads "$(nproc)" --out "$OUT" "${ARGS[@]}"
