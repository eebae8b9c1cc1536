#!/usr/bin/env bash
# Trains the shipped Fashion-MNIST model as models/fmnist-wrn-10-1.json records it (eood train,
# the code of record's recipe: SGD Nesterov 0.9, weight decay 5e-4, lr 0.1 cosine per step,
# batch 128, random crop + flip), calibrates its energy detector (T = 1) on the ID validation split
# (95% accepted), and writes into OUT_DIR: the weights (no optimizer state), the sidecar, the
# detector and SHA256SUMS. See docs/experiments.md.
#   scripts/bench-train-fmnist-model.sh [EPOCHS] [OUT_DIR] [THREADS]
# THREADS (default nproc): on a machine shared with other jobs, 1 thread was about 3x faster than
# 2 here (libtorch's parallel regions wait for the slowest thread).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
EPOCHS="${1:-10}"
OUT="${2:-models}"
THREADS="${3:-$(nproc)}"
cargo build --release --locked -p eood
EOOD="$(pwd)/target/release/eood"
DATA="$("$EOOD" data path cache)/fmnist-ood"
if [ ! -f "$DATA/manifest.json" ]; then
  "$EOOD" data fetch mnist-test notmnist-test omniglot-small
  "$EOOD" data build fmnist-ood
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
NAME=fmnist-wrn-10-1
# FROM_CHECKPOINT=<sidecar.json>: ship an already trained checkpoint (e.g. one finished with
# `eood train ... --resume` after an interruption) instead of training here.
CKPT="${FROM_CHECKPOINT:-$WORK/$NAME.json}"
if [ -z "${FROM_CHECKPOINT:-}" ]; then
  time "$EOOD" train --fmnist-ood "$DATA" --depth 10 --widen-factor 1 --dropout 0 --epochs "$EPOCHS" \
    --seed 1 --threads "$THREADS" --out "$CKPT"
fi
mkdir -p "$OUT"
# ship the weights only: drop the optimizer state (needed to resume training, not to use the model)
python3 - "$CKPT" "$OUT/$NAME.json" <<'PY'
import json, shutil, sys, os
src, dst = sys.argv[1], sys.argv[2]
meta = json.load(open(src))
shutil.copy(os.path.join(os.path.dirname(src), meta["weights"]), os.path.join(os.path.dirname(dst), meta["weights"]))
meta["optimizer"] = None
meta["optimizer_sha256"] = None
json.dump(meta, open(dst, "w"), indent=2)
open(dst, "a").write("\n")
PY
"$EOOD" extract --checkpoint "$OUT/$NAME.json" --dataset fmnist-ood/val_x --out-dir "$WORK" --quiet
"$EOOD" score --method energy --logits "$WORK/logits.npy" --out "$WORK/val_scores.npy"
"$EOOD" calibrate --id-scores "$WORK/val_scores.npy" --tpr 0.95 --method energy --out "$OUT/fmnist-detector.json"
WEIGHTS="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["weights"])' "$OUT/$NAME.json")"
(cd "$OUT" && sha256sum "$NAME.json" "$WEIGHTS" fmnist-detector.json > SHA256SUMS && cat SHA256SUMS)
