#!/usr/bin/env bash
# Project-local Python environment (.venv): the reference tools used by golden-value scripts
# and benchmarks (numpy, scikit-learn) and libtorch for tch, from the torch==2.11.0 wheel.
# Idempotent: a second run only checks what is there (about a second).
#
#   scripts/setup-python.sh          minimal torch: what the Rust build and binaries need
#   scripts/setup-python.sh --pytest
#                                    also the Python package: maturin, pytest and the package
#                                    (`pip install ./python`) into .venv, and the pytest venv
#                                    python/.venv-test (python/requirements-test.txt: full
#                                    torch==2.11.0, scikit-learn, pandas, dask; ~5.1 GB, measured
#                                    ~7 min on a fresh 2-core machine) with the package too
#   EOOD_TORCH=full scripts/setup-python.sh
#                                    importable PyTorch with all its CUDA wheels (about 4.7 GB
#                                    installed): for regenerating golden files and the PyTorch
#                                    side of benchmarks; chosen automatically on a machine with
#                                    an NVIDIA GPU (below), where it is what `--device cuda` needs
#   scripts/setup-python.sh --print-mode
#                                    only print the mode this machine gets and why, install
#                                    nothing (python/tests/test_setup_python.py checks it)
#
# GPU detection (EOOD_TORCH=minimal|full overrides it): `nvidia-smi -L` lists a GPU, or the
# NVIDIA kernel driver is loaded ($EOOD_NVIDIA_DRIVER_FILE, default /proc/driver/nvidia/version).
# Then the full install is the CUDA build of torch==2.11.0 from PyPI's default index (its Linux
# x86_64 wheels are CUDA builds), checked after installing: a CPU-only torch found there (e.g.
# from the PyTorch CPU index) is replaced, and the script says whether torch sees the GPU.
# crates/ood-nn/build.rs then links libtorch_cuda, so `eood ... --device cuda` works.
#
# Why "minimal" works (measured, docs/neural.md): the Linux x86_64 wheel from PyPI is a CUDA
# build and pulls ~2.3 GB of nvidia-* wheels plus triton. tch's binaries link libtorch_cpu.so and
# libc10.so (libtorch.so and libtorch_cuda.so are dropped by --as-needed on a CPU-only build),
# and libtorch_cpu.so needs only libcudart and libcupti. So: torch with --no-deps plus those two
# wheels. Python cannot `import torch` in that state (libtorch_python.so needs cuDNN, cuBLAS,
# NCCL, ...), which is why scripts/env.sh points tch at the wheel with LIBTORCH.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_VERSION=2.11.0
pip_install() { .venv/bin/python -m pip install -q --disable-pip-version-check "$@"; }

# Sets `mode` (minimal|full) and `why` for this machine; `gpu` is 1 when an NVIDIA GPU is seen.
detect_mode() {
  gpu=0
  local driver="${EOOD_NVIDIA_DRIVER_FILE:-/proc/driver/nvidia/version}"
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    gpu=1
    why="nvidia-smi lists $(nvidia-smi -L 2>/dev/null | grep -c '^GPU ') GPU(s)"
  elif [ -e "$driver" ]; then
    gpu=1
    why="NVIDIA driver loaded ($driver)"
  fi
  mode=${EOOD_TORCH:-}
  if [ -n "$mode" ]; then
    why="EOOD_TORCH=$mode"
  elif [ "$gpu" = 1 ]; then
    mode=full
  elif [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ]; then
    mode=minimal
    why="no NVIDIA GPU (Linux x86_64)"
  else
    mode=full # other platforms' wheels are CPU builds without CUDA dependencies
    why="no NVIDIA GPU ($(uname -s)-$(uname -m): PyPI's wheel is a CPU build)"
  fi
  case "$mode" in
    minimal | full) ;;
    *)
      echo "setup-python: EOOD_TORCH must be 'minimal' or 'full', got '$mode'" >&2
      exit 2
      ;;
  esac
}
detect_mode
if [ "${1:-}" = "--print-mode" ]; then
  echo "$mode ($why)"
  exit 0
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  pip_install --upgrade pip >/dev/null
fi
pip_install -r scripts/requirements-ref.txt

site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "setup-python: torch mode $mode ($why)" >&2

have_torch() { [ -d "$site/torch-$TORCH_VERSION.dist-info" ] && [ -f "$site/torch/lib/libtorch_cpu.so" -o -f "$site/torch/lib/libtorch_cpu.dylib" ]; }

# torch's CUDA version ("None" for a CPU build), empty when torch does not import.
torch_cuda() { .venv/bin/python -c 'import torch; print(torch.version.cuda)' 2>/dev/null || true; }

case "$mode" in
  full)
    if ! have_torch || [ -z "$(torch_cuda)" ]; then
      echo "setup-python: installing torch==$TORCH_VERSION with its dependencies" >&2
      pip_install -r scripts/requirements-torch-full.txt
    fi
    if [ "$gpu" = 1 ] && [ "$(torch_cuda)" = "None" ]; then
      echo "setup-python: the torch in .venv is a CPU build; installing PyPI's CUDA build" >&2
      pip_install --force-reinstall --no-deps torch==$TORCH_VERSION
      pip_install -r scripts/requirements-torch-full.txt
    fi
    if [ "$gpu" = 1 ]; then
      .venv/bin/python -c 'import torch; n = torch.cuda.device_count(); print(f"setup-python: torch {torch.__version__}, CUDA {torch.version.cuda}, sees {n} GPU(s)" + ("" if n else ": check the driver (nvidia-smi)"))' >&2 || true
    fi
    ;;
  minimal)
    if ! have_torch || ! compgen -G "$site/nvidia/cu13/lib/libcudart.so.13*" >/dev/null \
      || ! compgen -G "$site/nvidia/cu13/lib/libcupti.so.13*" >/dev/null; then
      echo "setup-python: installing torch==$TORCH_VERSION (minimal: libtorch + cudart + cupti)" >&2
      pip_install --no-deps -r scripts/requirements-torch-minimal.txt
    fi
    ;;
esac

# The Python package (docs/python.md). pip rebuilds it from the current source each run; cargo's
# cache in python/target makes that a few seconds when nothing changed.
if [ "${1:-}" = "--pytest" ]; then
  pip_install maturin==1.16.0 pytest==9.2.0
  pip_install ./python
  # torch must be importable for the torch-helper tests, which .venv's minimal torch is not:
  # a separate venv only for pytest, with the full wheel set
  if [ ! -x python/.venv-test/bin/python ]; then
    "$PY" -m venv python/.venv-test
  fi
  test_pip() { python/.venv-test/bin/python -m pip install -q --disable-pip-version-check "$@"; }
  if ! python/.venv-test/bin/python -c 'import torch, sklearn, pandas, distributed, pytest' >/dev/null 2>&1; then
    echo "setup-python: installing the pytest environment python/.venv-test (full torch==$TORCH_VERSION)" >&2
  fi
  test_pip -r python/requirements-test.txt
  test_pip ./python
fi
