#!/usr/bin/env bash
# Speed and memory of the neural layer vs PyTorch, same machine, same run, interleaved:
# WRN-40-2 inference (batch 256) and one energy fine-tuning step (128 + 256), 2 threads each.
#
#   bash scripts/bench-nn-vs-pytorch.sh [rounds=3] [infer iterations=3] [step iterations=2] [threads=2]
#
# Needs an importable PyTorch for the reference side: PYTHON (default .venv/bin/python; install with
# `EOOD_TORCH=full bash scripts/setup-python.sh`). Each run is its own process (so peak RSS is per run);
# the order alternates every round (tch, PyTorch, then PyTorch, tch) so drifting load hits both sides.
# Prints every run's JSON line, then per mode: median images/s of each side, the median over rounds of
# the per-round ratio tch / PyTorch, peak RSS, and the same ratio for images per CPU second (user +
# system time of the process: less sensitive than wall time to other processes sharing the cores). Writes all runs to $OUT (default
# target/bench-nn-vs-pytorch.jsonl). Results and the command line: docs/bench-nn-speed.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ROUNDS="${1:-3}"; INFER_IT="${2:-3}"; STEP_IT="${3:-2}"; THREADS="${4:-2}"
PYTHON="${PYTHON:-.venv/bin/python}"
OUT="${OUT:-target/bench-nn-vs-pytorch.jsonl}"
PROFILE="${PROFILE:-dev}"   # the Rust side only dispatches to libtorch; see docs/bench-nn-speed.md
"$PYTHON" -c "import torch" 2>/dev/null || {
  echo "error: $PYTHON cannot import torch (run: EOOD_TORCH=full bash scripts/setup-python.sh, or set PYTHON)" >&2
  exit 2
}
cargo build --quiet --profile "$PROFILE" -p ood-nn --example bench_vs_pytorch
dir=debug; [ "$PROFILE" = dev ] || dir="$PROFILE"
# A private copy: another build sharing target/ must not swap the binary between rounds.
tmp_bin="$(mktemp -d)"; trap 'rm -rf "$tmp_bin"' EXIT
cp "target/$dir/examples/bench_vs_pytorch" "$tmp_bin/"
RUST_BIN="$tmp_bin/bench_vs_pytorch"
mkdir -p "$(dirname "$OUT")"; : > "$OUT"
export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
run() { # impl mode iterations
  local line
  if [ "$1" = tch ]; then line="$("$RUST_BIN" "$2" "$3" "$THREADS")"
  else line="$("$PYTHON" scripts/bench-nn-vs-pytorch.py "$2" "$3" "$THREADS")"; fi
  local load; load="$(cut -d' ' -f1-3 /proc/loadavg)"
  line="${line%\}}, \"round\": $4, \"loadavg\": \"$load\"}"
  echo "$line" | tee -a "$OUT"
}
echo "start: $(uptime)"
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then order="tch pytorch"; else order="pytorch tch"; fi
  for mode in infer step; do
    it="$INFER_IT"; [ "$mode" = step ] && it="$STEP_IT"
    for impl in $order; do run "$impl" "$mode" "$it" "$r"; done
  done
done
echo "end:   $(uptime)"
"$PYTHON" - "$OUT" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
for mode in ("infer", "step"):
    by = {(r["impl"], r["round"]): r for r in runs if r["mode"] == mode}
    rounds = sorted({k[1] for k in by})
    med = {i: [statistics.median(by[(i, k)]["images_per_second"]) for k in rounds] for i in ("tch", "pytorch")}
    ratios = [t / p for t, p in zip(med["tch"], med["pytorch"])]
    rss = {i: max(by[(i, k)]["peak_rss_mb"] for k in rounds) for i in ("tch", "pytorch")}
    cpu = {i: [by[(i, k)]["images_per_cpu_second"] for k in rounds] for i in ("tch", "pytorch")}
    cpu_ratios = [t / p for t, p in zip(cpu["tch"], cpu["pytorch"])]
    print(f"{mode}: tch {statistics.median(med['tch']):.1f} img/s (rounds {', '.join(f'{v:.1f}' for v in med['tch'])}), "
          f"PyTorch {statistics.median(med['pytorch']):.1f} img/s (rounds {', '.join(f'{v:.1f}' for v in med['pytorch'])}); "
          f"median ratio tch/PyTorch {statistics.median(ratios):.3f} (rounds {', '.join(f'{v:.3f}' for v in ratios)}); "
          f"peak RSS tch {rss['tch']:.0f} MB, PyTorch {rss['pytorch']:.0f} MB")
    print(f"{mode} per CPU second: tch {statistics.median(cpu['tch']):.1f}, PyTorch {statistics.median(cpu['pytorch']):.1f} img/cpu-s; "
          f"median ratio {statistics.median(cpu_ratios):.3f} (rounds {', '.join(f'{v:.3f}' for v in cpu_ratios)})")
PY
