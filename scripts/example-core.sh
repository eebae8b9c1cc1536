#!/usr/bin/env bash
# A small worked example of the framework-free core, end to end on generated data:
# logits -> scores (energy, MSP) -> metrics (plain and with the paper's 10 draws) ->
# calibrated detector -> accept/reject flags, plus the Mahalanobis detector on features.
# Runs on a fresh machine after scripts/setup.sh (needs only cargo; no GPU, no data).
#
#   bash scripts/example-core.sh [OUT_DIR]     (default: results/example-core)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
OUT=${1:-results/example-core}
mkdir -p "$OUT"

step() { printf '\n== %s\n' "$*"; }

step "build eood (framework-free CLI) and the data generator"
cargo build --release --locked -q -p eood --no-default-features
cargo build --release --locked -q -p ood-core --example make_logits
EOOD=target/release/eood

step "generate a synthetic 10-class problem: ID val/test, near OOD, far OOD (logits + features)"
target/release/examples/make_logits "$OUT" 2020

step "score: negative energy T*logsumexp(logits/T) and MSP (higher = more in-distribution)"
for set in val test ood_near ood_far; do
  "$EOOD" score --method energy --logits "$OUT/${set}_logits.npy" --out "$OUT/${set}_energy.npy"
  "$EOOD" score --method msp --logits "$OUT/${set}_logits.npy" --out "$OUT/${set}_msp.npy"
done

step "metrics, energy, all OOD scores (paper convention: ID positive, FPR at 95% ID recall)"
"$EOOD" metrics --id "$OUT/test_energy.npy" --ood "$OUT/ood_near_energy.npy" --ood "$OUT/ood_far_energy.npy"

step "metrics, MSP baseline, same data"
"$EOOD" metrics --id "$OUT/test_msp.npy" --ood "$OUT/ood_near_msp.npy" --ood "$OUT/ood_far_msp.npy"

step "the paper's protocol: 10 draws of len(ID)/5 OOD scores, mean ± std (energy)"
"$EOOD" metrics --id "$OUT/test_energy.npy" --ood "$OUT/ood_near_energy.npy" --ood "$OUT/ood_far_energy.npy" \
  --draws 10 --seed 1 | tee "$OUT/metrics_energy_draws.txt"
"$EOOD" metrics --id "$OUT/test_energy.npy" --ood "$OUT/ood_near_energy.npy" --draws 10 --seed 1 --format json \
  > "$OUT/metrics_energy_near.json"
echo "JSON: $(cat "$OUT/metrics_energy_near.json")"

step "the other FPR95 convention (OOD positive, first threshold reaching 95% OOD recall)"
"$EOOD" metrics --id "$OUT/test_energy.npy" --ood "$OUT/ood_near_energy.npy" --convention ood-positive

step "calibrate tau on ID validation scores (accept 95%), then detect"
"$EOOD" calibrate --id-scores "$OUT/val_energy.npy" --tpr 0.95 --method energy --temperature 1 \
  --out "$OUT/detector.json"
for set in test ood_near ood_far; do
  "$EOOD" detect --detector "$OUT/detector.json" --scores "$OUT/${set}_energy.npy" --out "$OUT/${set}_flags.npy"
done

step "Mahalanobis on features: fit class means + tied covariance on train, score, metrics"
"$EOOD" fit --method mahalanobis_features --features "$OUT/train_features.npy" \
  --labels "$OUT/train_labels.npy" --out "$OUT/mahalanobis.json"
for set in test ood_near ood_far; do
  "$EOOD" score --method mahalanobis_features --fitted "$OUT/mahalanobis.json" \
    --features "$OUT/${set}_features.npy" --out "$OUT/${set}_maha.npy"
done
"$EOOD" metrics --id "$OUT/test_maha.npy" --ood "$OUT/ood_near_maha.npy" --ood "$OUT/ood_far_maha.npy"

step "done: every file is in $OUT"
