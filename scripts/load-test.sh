#!/usr/bin/env bash
# Load test of `eood serve` against a FastAPI + uvicorn + PyTorch peer serving the same model
# (scripts/peer_fastapi.py), in the same run: single-PNG POST /v1/detect at concurrency 1, 16
# and 64, with wrk (apt-get install wrk). Loopback only; bounded: each point runs DURATION
# seconds (default 10), 6 points, so about 1.5 minutes in all; servers are stopped on exit.
# Prints a markdown table (throughput, p50, p99, errors) and writes it to $OUT/results.md.
#
#   EOOD=target/release/eood scripts/load-test.sh          # default: release if built, else debug
#   BUNDLE=models/fmnist-bundle-torch EOOD=<a build with nn> scripts/load-test.sh   # libtorch kind
#
# Environment: EOOD (binary), BUNDLE (models/fmnist-bundle: ONNX through tract), WORKERS
# (`eood serve --workers`, default: the server's own), PEER_PY (a Python with torch, safetensors, pillow, fastapi,
# uvicorn; default /work/venv-serve/bin/python, made by `setup_peer` below if missing),
# DURATION, CONCURRENCY ("1 16 64"), EOOD_PORT/PEER_PORT (18080/18081), OUT (/tmp/eood-load).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONCURRENCY=${CONCURRENCY:-"1 16 64"}
EOOD_PORT=${EOOD_PORT:-18080}
PEER_PORT=${PEER_PORT:-18081}
OUT=${OUT:-/tmp/eood-load}
BUNDLE=${BUNDLE:-models/fmnist-bundle}
WORKERS=${WORKERS:-}
PEER_PY=${PEER_PY:-/work/venv-serve/bin/python}
if [ -z "${EOOD:-}" ]; then
  EOOD=target/release/eood
  [ -x "$EOOD" ] || EOOD=target/debug/eood
fi
command -v wrk >/dev/null || { echo "error: needs wrk (apt-get install wrk)" >&2; exit 2; }
[ -x "$EOOD" ] || { echo "error: no eood binary at $EOOD (cargo build --release -p eood)" >&2; exit 2; }

# The peer's environment: a venv outside the repo that sees /work/venv-ref's torch through a
# .pth file, plus fastapi and uvicorn from PyPI.
if [ ! -x "$PEER_PY" ] && [ "$PEER_PY" = /work/venv-serve/bin/python ]; then
  /work/venv-ref/bin/python -m venv /work/venv-serve
  /work/venv-ref/bin/python -c 'import site; print(site.getsitepackages()[0])' \
    > "$(/work/venv-serve/bin/python -c 'import site; print(site.getsitepackages()[0])')/venv-ref.pth"
  /work/venv-serve/bin/pip install -q fastapi uvicorn
fi

mkdir -p "$OUT"
# the request: MNIST test digit 1 (28 x 28 gray PNG) from the test fixture
"$PEER_PY" - "$OUT/digit.png" <<'PY'
import sys
import numpy as np
from PIL import Image
a = np.load("crates/ood-bundle/tests/fixtures/mnist-t10k-first8.npy")
Image.fromarray(a[1].reshape(28, 28)).save(sys.argv[1])
PY
cat > "$OUT/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "image/png"
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %.3f %.3f %d\n", summary.requests, summary.duration,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.status + e.timeout))
end
LUA

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$EOOD" serve --bundle "$BUNDLE" --addr "127.0.0.1:$EOOD_PORT" ${WORKERS:+--workers "$WORKERS"} \
  2> "$OUT/eood.log" &
pids+=($!)
"$PEER_PY" scripts/peer_fastapi.py --checkpoint models/fmnist-wrn-10-1.json \
  --detector models/fmnist-detector.json --port "$PEER_PORT" 2> "$OUT/peer.log" &
pids+=($!)
for port in "$EOOD_PORT" "$PEER_PORT"; do
  for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.5
  done
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { echo "error: nothing on port $port" >&2; exit 2; }
done
# both must give the same decision on the request before anything is timed
e=$(curl -s --data-binary @"$OUT/digit.png" -H 'Content-Type: image/png' "http://127.0.0.1:$EOOD_PORT/v1/detect")
p=$(curl -s --data-binary @"$OUT/digit.png" -H 'Content-Type: image/png' "http://127.0.0.1:$PEER_PORT/v1/detect")
echo "eood: $e" >&2
echo "peer: $p" >&2

{
  echo "| server | concurrency | requests | throughput (req/s) | p50 (ms) | p99 (ms) | errors |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
} > "$OUT/results.md"
for c in $CONCURRENCY; do
  t=$(( c < 2 ? 1 : 2 ))
  for target in "eood:$EOOD_PORT" "peer:$PEER_PORT"; do
    name=${target%%:*}
    port=${target##*:}
    line=$(BODY="$OUT/digit.png" wrk -t "$t" -c "$c" -d "${DURATION}s" --timeout 10s \
      -s "$OUT/post.lua" "http://127.0.0.1:$port/v1/detect" | grep '^RESULT')
    read -r _ n us p50 p99 errs <<< "$line"
    rps=$(awk -v n="$n" -v us="$us" 'BEGIN { printf "%.1f", n / (us / 1e6) }')
    label=$([ "$name" = eood ] && echo "eood serve ($(basename "$BUNDLE"))" || echo "FastAPI + uvicorn + PyTorch")
    echo "| $label | $c | $n | $rps | $p50 | $p99 | $errs |" >> "$OUT/results.md"
  done
done
curl -s "http://127.0.0.1:$EOOD_PORT/metrics" | grep -E '^eood_(model_calls_total|batch_size_(sum|count))' >&2 || true
cat "$OUT/results.md"
