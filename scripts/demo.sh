#!/usr/bin/env bash
# The main command (README): on a fresh machine, everything from setup to the paper's tables.
#   1. setup: Python venv with libtorch (torch wheel), benchmark sources   (scripts/setup.sh)
#   2. build eood (release)
#   3. build the Fashion-MNIST OOD benchmark (about 30 s)
#   4. score the shipped pre-trained model: MSP, energy, ODIN, Mahalanobis on the six OOD test
#      sets, Table 1 / Table 2 / figures in results/demo (about two minutes on 2 cores)
#   5. the shipped calibrated detectors (`eood detect`), pre-trained and energy-fine-tuned: they accept
#      in-distribution images and refuse OOD ones
# The whole benchmark with fine-tuning (about 15 minutes): scripts/bench-fmnist.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

echo "== 1/5 setup (Python + libtorch, benchmark sources)"
bash scripts/setup.sh
# shellcheck disable=SC1091
source scripts/env.sh

echo "== 2/5 build eood (release)"
cargo build --release --locked -p eood
EOOD="$ROOT/target/release/eood"

echo "== 3/5 build the Fashion-MNIST OOD benchmark"
DATA="$("$EOOD" data path cache)/fmnist-ood"
if [ -f "$DATA/manifest.json" ]; then
  echo "already built: $DATA"
else
  # MNIST / notMNIST / Omniglot test sets: found in the cache or shared data, else downloaded
  "$EOOD" data fetch mnist-test notmnist-test omniglot-small
  "$EOOD" data build fmnist-ood
fi

echo "== 4/5 score the shipped model (models/fmnist-wrn-10-1.json): tables and figures"
(cd models && sha256sum -c SHA256SUMS)
"$EOOD" bench fmnist-ood --shipped --no-finetune --out results/demo
echo
cat results/demo/table1.md
echo
echo "full record: results/demo/README.md; figures: results/demo/figures/*.png"

echo "== 5/5 the calibrated detectors accept in-distribution images and refuse OOD ones"
# the shipped pre-trained model, and the shipped energy-fine-tuned one (models/README.md: from the
# benchmark run committed before the one in docs/results/fmnist-ood)
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
for model in fmnist-wrn-10-1:fmnist-detector fmnist-wrn-10-1-energy-ft:fmnist-energy-ft-detector; do
  ckpt="models/${model%%:*}.json"
  det="models/${model##*:}.json"
  echo "-- $ckpt with $det (accept iff -E(x) > tau)"
  for set in test_x ood_test/mnist ood_test/notmnist ood_test/omniglot ood_test/textures ood_test/photo_crop; do
    "$EOOD" extract --checkpoint "$ckpt" --dataset "fmnist-ood/$set" --out-dir "$WORK" --quiet
    "$EOOD" score --method energy --logits "$WORK/logits.npy" --out "$WORK/scores.npy" 2>/dev/null
    printf '  %-20s ' "$set:"
    "$EOOD" detect --detector "$det" --scores "$WORK/scores.npy" --out "$WORK/flags.npy" 2>&1 |
      sed -e 's/; wrote .*//' -e 's/^energy detector (tau = [0-9.]*): //'
  done
done
echo "(test_x is in-distribution: about 95% accepted by construction of tau; the other sets are OOD)"
