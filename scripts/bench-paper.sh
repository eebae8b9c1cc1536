#!/usr/bin/env bash
# The paper's own benchmark (Tables 1 and 2 of Liu et al. 2020) for CIFAR-10 / CIFAR-100 / SVHN,
# on a GPU (docs/experiments.md lists the data each step needs and its cost).
#   scripts/bench-paper.sh cifar10 DATA_DIR [RELEASE_DIR] [extra eood bench flags...]
# DATA_DIR: the benchmark folder (fmnist-ood layout). With RELEASE_DIR (the extracted
# cifar-10-batches-bin / cifar-100-binary / SVHN .mat folder), its ID part is written first.
# DATA_DIR/ood_test/{textures,svhn,places365,lsun_crop,lsun_resize,isun}.npy and
# DATA_DIR/aux_outliers.npy (300K Random Images or a Tiny Images sample, N x 32 x 32 x 3 uint8)
# must be there. Evaluate the code of record's checkpoints instead of training with e.g.
#   --state-dict cifar10_wrn_pretrained_epoch_99.pt --energy-ft-state-dict cifar10_wrn_s1_energy_ft_epoch_9.pt \
#   --oe-state-dict cifar10_wrn_oe_tune_epoch_9.pt
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
BENCH="${1:?benchmark: cifar10, cifar100 or svhn}"
DATA="${2:?benchmark folder}"
shift 2
PREP=()
if [ $# -gt 0 ] && [ -d "$1" ]; then PREP=(--prepare-from "$1"); shift; fi
DEVICE=cpu
if command -v nvidia-smi >/dev/null 2>&1; then DEVICE=cuda; fi
cargo build --release --locked -p eood
target/release/eood bench "$BENCH" --data "$DATA" "${PREP[@]}" --device "$DEVICE" --out "results/$BENCH" "$@"
